"""Lightning DDP under Hydra: one output directory per run, ranks that agree on failure.

Lightning's script launcher (strategy ``ddp``) starts ranks 1..N-1 of a node by re-running
the command line with ``hydra.run.dir=<run dir>`` appended. That is wrong in a multirun
(the children get ``-m`` and the sweep overrides, and the run-dir pattern instead of the
job's directory) and impossible when the job runs inside a Hydra launcher's own process
(submitit: ``sys.argv`` is submitit's). While a task runs (:func:`hydra_job`), ranks > 0
are started instead as ``python -m imagenet_multilabel.entry.rank_worker <job file>``: the job's
config, already resolved by rank 0 (output dir, timestamps, ...), and the task to call.
They write no ``.hydra/`` and log to ``<task>.rank<R>.log`` beside rank 0's log.

Where processes are created outside (SLURM via submitit, torchrun) every rank runs the
Hydra job itself; :func:`rank_suffix` keeps their logs apart and ``hydra.output_subdir``
is written by rank 0 only (see conf/hydra/default.yaml).
"""

from __future__ import annotations

import atexit
import logging
import logging.config
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.core.errors import Interrupted, UserError, find_user_error, one_line

log = logging.getLogger(__name__)

# Environment variables Lightning's launcher sets in the process that starts the ranks.
_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_THREADS_ENV = "OMP_NUM_THREADS"


def _env_int(env: Mapping[str, str], key: str) -> int | None:
    value = env.get(key, "")
    return int(value) if value.strip().isdigit() else None


def rank_suffix(env: Mapping[str, str] | None = None) -> str:
    """``""`` on global rank 0 (and outside DDP), ``.rank<R>`` on other ranks: for file
    names that all ranks of a run would otherwise share. The rank comes from the
    environment, as the process was started: ``RANK`` (torchrun), ``SLURM_PROCID`` (a
    SLURM step of several tasks), else ``NODE_RANK`` / ``LOCAL_RANK`` (Lightning's launcher;
    ``.node<N>.rank<L>`` on nodes > 0, where the global rank is not known yet)."""
    env = os.environ if env is None else env
    rank = _env_int(env, "RANK")
    if rank is None and (_env_int(env, "SLURM_NTASKS") or 1) > 1:
        rank = _env_int(env, "SLURM_PROCID")
    if rank is not None:
        return f".rank{rank}" if rank else ""
    node, local = _env_int(env, "NODE_RANK") or 0, _env_int(env, "LOCAL_RANK") or 0
    if node:
        return f".node{node}.rank{local}"
    return f".rank{local}" if local else ""


def is_global_zero() -> bool:
    """Whether this process is global rank 0 (or the only process), from how it was started."""
    return rank_suffix() == ""


def _rank_zero_only(value: Any) -> Any:
    return None if rank_suffix() else value


def slurm_gpus_per_node(accelerator: Any, devices: Any) -> Any:
    """The GPUs per node a SLURM job asks for: none for a CPU trainer, else the trainer's
    devices (``accelerator=auto`` included: a job that may use GPUs gets them)."""
    return None if str(accelerator).strip().lower() == "cpu" else devices


def register_resolvers() -> None:
    """``${rank_suffix:}`` and ``${rank_zero_only:<value>}`` (null on other ranks), resolved
    in each process (no cache), for Hydra's log file name and ``hydra.output_subdir``;
    ``${slurm_gpus_per_node:<accelerator>,<devices>}`` for conf/hydra/launcher/."""
    OmegaConf.register_new_resolver("rank_suffix", lambda: rank_suffix(), replace=True)
    OmegaConf.register_new_resolver("rank_zero_only", _rank_zero_only, replace=True)
    OmegaConf.register_new_resolver("slurm_gpus_per_node", slurm_gpus_per_node, replace=True)


register_resolvers()  # on import: Hydra resolves its logging config before any task runs


# -- ranks > 0 started by Lightning's launcher -------------------------------------------

_current_job: dict[str, Any] | None = None


def _task_ref(task: Callable) -> str:
    ref = f"{task.__module__}:{task.__qualname__}"
    if task.__module__ == "__main__" or "<" in task.__qualname__:
        raise ValueError(f"task {ref} cannot be imported by other ranks")
    return ref


def rank_log_file(filename: str | os.PathLike, local_rank: int) -> str:
    """``.../evaluate.log`` -> ``.../evaluate.rank1.log`` for a rank started by Lightning."""
    env = {**os.environ, "LOCAL_RANK": str(local_rank)}
    path = Path(filename)
    return str(path.with_name(f"{path.stem}{rank_suffix(env)}{path.suffix}"))


def write_job_file(task: Callable, cfg: DictConfig, local_rank: int) -> Path:
    """What a rank > 0 needs to run the current job: the task, the resolved config, the
    working directory and its logging config (Hydra's, with its own log file)."""

    logging_cfg: dict[str, Any] | None = None
    if HydraConfig.initialized():
        node = HydraConfig.get().job_logging
        if node is not None:
            logging_cfg = OmegaConf.to_container(node, resolve=True)
            for handler in (logging_cfg or {}).get("handlers", {}).values():
                if "filename" in handler:
                    handler["filename"] = rank_log_file(handler["filename"], local_rank)
    job = {
        "task": _task_ref(task),
        "cwd": os.getcwd(),
        "logging": logging_cfg,
        "config": OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),  # a composed cfg
            resolve=True,
            throw_on_missing=False,
        ),
    }
    # in the run folder (where a crash leaves nothing behind in the system's temp folder)
    folder = cfg.get("paths", {}).get("output_dir") if isinstance(cfg, DictConfig) else None
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".rank{local_rank}-job-", suffix=".yaml", dir=folder or None
    )
    os.close(fd)
    OmegaConf.save(OmegaConf.create(job), name)
    atexit.register(Path(name).unlink, missing_ok=True)
    return Path(name)


def rank_command(local_rank: int) -> tuple[list[str], str]:
    """Stands in for Lightning's ``_hydra_subprocess_cmd`` during :func:`hydra_job`: the
    command and working directory that start local rank ``local_rank`` of the job."""
    assert _current_job is not None, "rank_command is only installed inside hydra_job"
    path = write_job_file(_current_job["task"], _current_job["cfg"], local_rank)
    return [
        sys.executable,
        "-m",
        "imagenet_multilabel.entry.rank_worker",
        str(path),
    ], os.getcwd()


@contextmanager
def hydra_job(task: Callable, cfg: DictConfig) -> Iterator[None]:
    """The scope of one task run in this process (one Hydra job; a multirun runs several
    one after the other): Lightning starts ranks > 0 with :func:`rank_command`, and at the
    end the process group and the launcher's environment are taken down, so that the
    next job starts its own ranks on a fresh port."""
    # Lightning imports torch: every command imports this module (its resolvers)
    from lightning.pytorch.strategies.launchers import subprocess_script as module
    from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

    global _current_job
    saved_env = {k: os.environ.get(k) for k in (*_LAUNCHER_ENV, _THREADS_ENV)}
    launches = "LOCAL_RANK" not in os.environ  # not a rank started by another process
    previous, _current_job = _current_job, {"task": task, "cfg": cfg}
    original = module._hydra_subprocess_cmd, module._launch_process_observer
    notifier = _SignalConnector._sigterm_notifier_fn
    module._hydra_subprocess_cmd = rank_command
    module._launch_process_observer = observe_children
    _SignalConnector._sigterm_notifier_fn = note_sigterm
    try:
        yield
    finally:
        module._hydra_subprocess_cmd, module._launch_process_observer = original
        _SignalConnector._sigterm_notifier_fn = notifier
        _current_job = previous
        if launches:
            _destroy_process_group()
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def note_sigterm(connector: Any, signum: int, frame: Any) -> None:
    """Stands in for Lightning's SIGTERM notifier during :func:`hydra_job`. Lightning's
    broadcasts from inside the signal handler to tell the other ranks, a collective that
    waits forever when another rank is leaving at the same time (seen: rank 0 hung in it
    while rank 1 exited). Here the handler of ``interrupts_raise`` (``entry/run.py``),
    which Lightning calls next, ends the run; the other ranks end with rank 0 (``rank_worker``)."""
    connector.received_sigterm = True


def observe_children(children: list[subprocess.Popen], period_s: float = 1.0) -> None:
    """Stands in for Lightning's process observer during :func:`hydra_job`: a thread that
    watches the ranks rank 0 started. When one ends with an error that the ranks did not
    agree on (those empty ``children`` first: :func:`_detach_children`), the others are
    killed and this process ends with one line: exit 143 / 130 when a rank was
    interrupted (SIGTERM / SIGINT), else 1. (Lightning's observer SIGKILLs the whole job
    without a word.)"""

    def watch() -> None:
        while children:
            time.sleep(period_s)
            codes = [p.poll() for p in list(children)]
            if not children or all(c == 0 for c in codes):
                return
            # exit code 2: a rank ended on the error all ranks agreed on, which rank 0 reports
            failed = [c for c in codes if c and c != 2]
            if not failed:
                continue
            for proc in list(children):
                if proc.poll() is None:
                    proc.kill()
            signals = [s for s in (signal.SIGTERM, signal.SIGINT) if {-s, 128 + s} & set(failed)]
            if signals:
                message, code = Interrupted.message(signals[0]), 128 + signals[0]
            else:
                message, code = (
                    f"a rank process ended with exit code {failed[0]} (see its "
                    "<task>.rank<R>.log in the run folder); all ranks were stopped",
                    1,
                )
            log.error(message)
            print(f"error: {message}", file=sys.stderr, flush=True)
            logging.shutdown()
            os._exit(code)

    threading.Thread(target=watch, name="rank-observer", daemon=True).start()


def _destroy_process_group() -> None:
    # torch: not at every command start (this module registers resolvers)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# -- the DDP strategy ----------------------------------------------------------------------


def _ddp_strategy_class() -> type:
    # Lightning imports torch: only when DDP runs
    from lightning.pytorch.strategies import DDPStrategy as LightningDDP

    class DDPStrategy(LightningDDP):
        """Lightning's ``ddp``, with validation steps during fitting run on the module
        itself instead of through DDP's forward. That forward broadcasts rank 0's buffers
        (a collective) on every step, and validation batches are dealt whole, so ranks may
        have different numbers of them: one rank would wait forever. Rank 0's buffers
        (BatchNorm statistics) are broadcast once when validation starts instead, so every
        rank validates with the same model, as before."""

        def on_validation_start(self) -> None:
            # torch: not at every command start (this module registers resolvers)
            import torch.distributed as dist

            super().on_validation_start()
            if self.model is self.lightning_module:  # not wrapped: not fitting
                return
            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                for buffer in self.lightning_module.buffers():
                    dist.broadcast(buffer.data, src=0)

        def validation_step(self, *args: Any, **kwargs: Any) -> Any:
            with self.precision_plugin.val_step_context():
                return self.lightning_module.validation_step(*args, **kwargs)

    return DDPStrategy


def ddp_strategy(**kwargs: Any) -> Any:
    """The strategy of ``trainer=ddp`` (conf/trainer/ddp.yaml): see ``DDPStrategy`` above."""
    return _ddp_strategy_class()(**kwargs)


# -- failures: every rank ends with the same error ----------------------------------------


class RankFailed(UserError):
    """A rank failed (its error is the message); raised on every rank, printed by rank 0."""

    def __init__(self, message: str, rank: int, report: bool) -> None:
        super().__init__(message)
        self.rank = rank
        self.report = report


def _describe(error: BaseException) -> tuple[str, bool]:
    user_error = find_user_error(error)
    if user_error is not None:
        return one_line(user_error), True
    return one_line(RuntimeError(f"{type(error).__name__}: {error}")), False


def raise_if_any_rank_failed(error: BaseException | None, trainer: Any = None) -> None:
    """Collective: all ranks learn whether any rank failed, and all raise.

    Called by every rank at the same point (before the predictions are gathered), with the
    error that stopped its own part of the work, or None. With one process the error is
    raised as it is. Otherwise each rank raises :class:`RankFailed` with the first failed
    rank's message (a rank whose own error is a bug re-raises that, with its traceback),
    so that every process ends promptly, with no hang and no results written.
    """
    # torch: not at every command start (this module registers resolvers)
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        if error is not None:
            raise error
        return
    mine = None if error is None else _describe(error)
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    failed = [(rank, msg) for rank, msg in enumerate(gathered) if msg is not None]
    if not failed:
        return
    rank = dist.get_rank()
    if rank == 0 and trainer is not None:
        _detach_children(trainer)
    if error is not None and not mine[1]:
        raise error
    first, (message, _) = failed[0]
    if rank != 0:  # rank 0 reports it (entry/run.py: run_task)
        log.error("rank %d failed: %s", first, message)
    raise RankFailed(message, rank=first, report=rank == 0)


def _detach_children(trainer: Any) -> None:
    """Rank 0 of a Lightning-launched node: all ranks are about to exit with the same
    error. Take the children away from Lightning's observer (which kills this process as
    soon as one exits non-zero, maybe before the error is printed) and wait for them at
    exit instead (killing any that take longer than a minute)."""
    procs = getattr(getattr(trainer.strategy, "launcher", None), "procs", None)
    if not procs:
        return
    children = list(procs)
    procs.clear()  # the observer thread holds this very list: an empty one ends it

    def wait_for_children() -> None:
        for proc in children:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()

    atexit.register(wait_for_children)


def configure_rank_logging(logging_cfg: Mapping[str, Any] | None) -> None:
    if logging_cfg:
        logging.config.dictConfig(dict(logging_cfg))
    else:
        logging.basicConfig(level=logging.INFO)

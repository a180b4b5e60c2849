"""Entry-point glue: run a task under Hydra and turn UserErrors into one-line messages."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from imagenet_multilabel.core import distributed  # also registers the resolvers conf/hydra/ uses
from imagenet_multilabel.core.config import in_multirun
from imagenet_multilabel.core.errors import Interrupted, UserError, find_user_error, one_line
from imagenet_multilabel.core.logs import log_to_files, quiet_lightning
from imagenet_multilabel.runs import lock
from imagenet_multilabel.scoring.checks import check_optimized_metric
from imagenet_multilabel.sweeps.callback import failed_jobs
from imagenet_multilabel.tracking.session import close_open_run

log = logging.getLogger("imagenet_multilabel")
# conf/hydra/launcher/submitit_*.yaml extend the plugin's schemas of the same name, which
# Hydra 1.3 (pinned <1.4) supports but announces on every run (its message starts with a
# newline, which ``.*`` does not match)
warnings.filterwarnings(
    "ignore", message=r"\s*'[^']+' is validated against ConfigStore schema with the same name"
)
# Lightning 2.6 builds torch's LeafSpec, which torch >= 2.10 announces on every batch
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


class _OnceOnly(logging.Filter):
    """Lets the first of submitit's repeated warnings through (where SLURM has no job
    accounting, every status poll fails: 16 lines in 45 s), drops the rest."""

    REPEATED = ("Bypassing sacct error",)

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = next((k for k in self.REPEATED if k in record.getMessage()), None)
        if kind is None:
            return True
        if kind in self.seen:
            return False
        self.seen.add(kind)
        record.msg, record.args = f"{record.getMessage()} (shown once)", ()
        return True


logging.getLogger("submitit").addFilter(_OnceOnly())


_task_started = False  # set by run_task: errors after it are the task's, not Hydra's
FAILED_JOBS_EXIT = 1


def run_task(
    task: Callable[[DictConfig], Mapping[str, float]] | str,
    cfg: DictConfig,
    *,
    trainer: bool = False,
    check: Callable[[DictConfig], None] | None = None,
) -> Any:
    """Call ``task(cfg)``; a UserError (also one re-raised from a DataLoader worker) ends
    the process with ``error: <one line>`` and exit code 2, and nothing else. Under DDP
    every rank ends so; the line is printed once, by rank 0.

    ``trainer``: the task runs a Lightning Trainer, whose DDP ranks > 0 are then started
    as this Hydra job (:func:`distributed.hydra_job`). Returns the task's metrics, or the
    one named by ``cfg.optimized_metric`` when set (what Hydra's sweepers optimise).

    ``task`` may be ``"module:function"``: it is imported only after ``check(cfg)`` has
    passed, so that a config error is reported before torch and the rest are imported.
    """
    global _task_started
    _task_started = True
    try:
        with interrupts_raise(), lock.hold(_run_folder(cfg), what="run"):
            forget_earlier_result(cfg)
            if check is not None:
                check(cfg)
            if isinstance(task, str):
                task = import_task(task)
            quiet_lightning()  # imported with the task
            failed = True
            try:
                if trainer:
                    with distributed.hydra_job(task, cfg):
                        metrics = task(cfg)
                else:
                    metrics = task(cfg)
                failed = False
            finally:
                close_open_run(failed)
    except (Exception, Interrupted) as e:
        user_error = find_user_error(e)
        if user_error is None:
            raise
        code = user_error.exit_code if isinstance(user_error, Interrupted) else 2
        if not distributed.is_global_zero() and isinstance(
            user_error, (Interrupted, distributed.RankFailed)
        ):
            raise SystemExit(code) from None  # rank 0 prints it
        if isinstance(user_error, distributed.RankFailed) and not user_error.report:
            raise SystemExit(2) from None
        _fail(one_line(user_error), code)
    except SystemExit as e:
        if type(e).__name__ != "SIGTERMException":  # Lightning's, with exit code 0
            raise
        _fail(Interrupted.message(signal.SIGTERM), 128 + signal.SIGTERM)
    return optimized_value(metrics, cfg.get("optimized_metric"))


def _run_folder(cfg: DictConfig) -> str | None:
    """The folder a single run writes (held while it runs: runs/lock.py); None in a
    multirun (each job holds its own: sweeps/job.py), on ranks > 0 and for a task that
    reads a run folder rather than writing one (``score``'s ``run_dir``)."""
    out = (cfg.get("paths") or {}).get("output_dir")
    if not out or in_multirun() or not distributed.is_global_zero():
        return None
    return str(out)


def _multirun(argv: list[str]) -> bool:
    return any(a in ("-m", "--multirun") for a in argv) or any(
        a.startswith("hydra.mode=") and a.endswith("MULTIRUN") for a in argv
    )


def _explicit_run_dir(argv: list[str]) -> str | None:
    """``hydra.run.dir=X`` of a single run's command line (the last one), else None."""
    if _multirun(argv) or not distributed.is_global_zero():
        return None
    found = None
    for arg in argv[1:]:
        key, sep, value = arg.lstrip("+~").partition("=")
        if sep and key == "hydra.run.dir" and "${" not in value:
            found = value.strip().strip("'\"")
    return found or None


def hydra_main(main: Callable[[], Any]) -> None:
    """Call a ``@hydra.main`` function. Hydra's own errors (an unknown config option or key,
    an override it cannot parse, a run folder it cannot create) end as one line
    ``error: ...`` with exit code 2, as the tasks' errors do (Hydra prints them over several
    lines and exits 1); Ctrl-C before a task runs ends with one line and exit code 130.
    Errors once a task has started are the task's: :func:`run_task` reports a user's, and a
    bug keeps its traceback."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra raises them instead of printing
    try:
        # a run folder named on the command line is held before Hydra writes its .hydra/
        # and log there (a second run into it would overwrite the first's config)
        run_dir = _explicit_run_dir(sys.argv)
        folder = Path(run_dir) if run_dir else None
        if folder is not None and folder.exists() and not folder.is_dir():
            folder = None  # a file: Hydra's line names hydra.run.dir
        with lock.hold(folder, what="run"):
            main()
    except BaseException as e:
        said = None if _task_started else _hydra_error(e)
        if said is None:
            raise
        message, code = said
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(code) from None
    if failed_jobs:  # a multirun whose leaderboard is written, with failed jobs
        names = ", ".join(failed_jobs[:5]) + (", ..." if len(failed_jobs) > 5 else "")
        print(
            f"error: {len(failed_jobs)} job(s) of the sweep failed: {names}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(FAILED_JOBS_EXIT)


def _hydra_error(e: BaseException) -> tuple[str, int] | None:
    """The line and exit code of an error Hydra raised before the task, else None."""

    if isinstance(e, OverrideParseException):
        return (
            f"cannot parse {e.override!r}: quote a value with spaces, commas or brackets, "
            "e.g. 'data.root=\"/photos (2024), v2\"'",
            2,
        )
    # ours, raised in Hydra's part (a launcher, a resolver), before Hydra's wrapper of it
    user_error = find_user_error(e)
    if user_error is not None and not isinstance(user_error, Interrupted):
        return one_line(user_error), 2
    if isinstance(e, (HydraException, OmegaConfBaseException)):
        return one_line(e), 2
    if isinstance(e, OSError) and e.filename is not None:  # the run folder Hydra creates
        option = "hydra.sweep.dir" if _multirun(sys.argv) else "hydra.run.dir"
        return f"cannot write {e.filename} ({e.strerror}): choose another {option}=...", 2
    if isinstance(e, KeyboardInterrupt):
        return Interrupted.message(signal.SIGINT), 128 + signal.SIGINT
    return None


def forget_earlier_result(cfg: DictConfig) -> None:
    """A run in a reused folder first removes the metrics.json an earlier run left there, so
    that it cannot stand beside this run's config when this one fails ("metrics.json means
    finished"). Not in a multirun (its jobs skip complete results: sweeps/planning.py), not on
    ranks > 0, and not where the folder is the run being read (``score``, refused later)."""
    out = (cfg.get("paths") or {}).get("output_dir")
    if not out or in_multirun() or not distributed.is_global_zero():
        return
    out = Path(out).expanduser()
    read = cfg.get("run_dir")
    if read and out.resolve() == Path(str(read)).expanduser().resolve():
        return
    from imagenet_multilabel.runs.rundir import forget_result  # numpy: not at every command start

    with contextlib.suppress(OSError):  # an unwritable folder is reported by the task
        forget_result(out)


def import_task(ref: str) -> Callable[[DictConfig], Mapping[str, float]]:
    """``"package.module:function"`` -> the function."""

    module, _, name = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """SIGTERM and SIGINT (Ctrl-C) raise :class:`Interrupted` in the main thread while a task
    runs, so that it ends like any error: one line, exit code 143 / 130, no results (by
    default Python dies without a word on SIGTERM, Lightning's own handler ends validation
    with exit code 0, and Lightning turns Ctrl-C into exit code 1)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a forked DataLoader worker: what it would do by default
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # the worker loop ends quietly on it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        # from here on, errors of background threads and of finalizers are consequences (a
        # DataLoader worker stopped mid-handshake resets the connection of multiprocessing's
        # fd sharer; a loader's __del__ finds its worker killed by the same signal)
        threading.excepthook = lambda args: None
        sys.unraisablehook = lambda args: None
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def optimized_value(metrics: Mapping[str, float], name: str | None) -> Any:
    """``metrics[name]`` (a ``<dataset>/<metric>`` key) when ``name`` is set, else ``metrics``."""
    if not name:
        return metrics
    try:
        check_optimized_metric(metrics, name)
    except UserError as e:
        _fail(one_line(e))
    return metrics[name]


def _fail(message: str, code: int = 2) -> None:
    log_to_files(log, logging.ERROR, message)  # printed once, below
    print(f"error: {message}", file=sys.stderr, flush=True)
    if code > 128:  # a signal
        # stop now: the interpreter's teardown can abort in a native thread that the
        # signal interrupted (seen with DataLoader workers killed alongside); results are
        # written atomically, so nothing is left half-done
        logging.shutdown()
        sys.stdout.flush()
        lock.release_all()
        os._exit(code)
    raise SystemExit(code)

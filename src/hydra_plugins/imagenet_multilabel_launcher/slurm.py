"""The SLURM launcher of conf/hydra/launcher/submitit_slurm.yaml: hydra-submitit-launcher's,
with two changes:

- a job that SLURM refuses (``sbatch`` fails: an unknown partition, a GPU request on a
  cluster without GPUs) ends the sweep with one line that names the launcher setting to
  change, instead of a traceback after sbatch's own message;
- a job that ends without a result (cancelled with ``scancel``, its node failed, out of
  time or memory) is a failed job of the sweep, as a job whose task fails is: its folder
  gets ``failed.json`` with SLURM's state, the other jobs are waited for, the leaderboard
  lists it, and ``resume=`` runs it again. (The plugin's launcher raises at the first
  such job and leaves the others unattended.)"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf, open_dict

log = logging.getLogger(__name__)

# sbatch's error -> the setting that makes it go away
HINTS = (
    (
        r"generic resource|gres",
        "hydra.launcher.gpus_per_node / hydra.launcher.gres ask for what the cluster lacks: "
        "trainer.accelerator=cpu asks for no GPUs, or set them to what `sinfo -o '%P %G'` lists",
    ),
    (
        r"partition",
        "set hydra.launcher.partition to one of the cluster's partitions (`sinfo -s`)",
    ),
    (
        r"node configuration is not available|more processors than|cpu count",
        "lower hydra.launcher.cpus_per_task / hydra.launcher.mem_gb, or trainer.devices "
        "(tasks per node), to what a node has (`sinfo -N -l`)",
    ),
    (r"account", "set hydra.launcher.account to one of yours (`sacctmgr show assoc user=$USER`)"),
    (r"qos", "set hydra.launcher.qos to one the partition allows (`sacctmgr show qos`)"),
    (r"time limit", "lower hydra.launcher.timeout_min to the partition's limit (`sinfo -s`)"),
    (r"feature|constraint", "set hydra.launcher.constraint to features the nodes have"),
)


def refusal_line(stderr: str) -> str:
    """One line for sbatch's refusal ``stderr``: its reason and the setting to change."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    errors = [re.sub(r"^sbatch: error:\s*", "", ln) for ln in lines if "error" in ln.lower()]
    errors = [e for e in errors if not e.lower().startswith("batch job submission failed")] or [
        re.sub(r"^sbatch: error:\s*", "", ln) for ln in lines
    ]
    reason = errors[0] if errors else "no reason given"
    hint = next(
        (h for pattern, h in HINTS if re.search(pattern, " ".join(errors), re.I)),
        "check the hydra.launcher.* settings (conf/hydra/launcher/submitit_slurm.yaml)",
    )
    return f"SLURM refused the job (sbatch: {reason}): {hint}"


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        # imported here, as below: Hydra imports every plugin at the start of any command,
        # before the config check, which must not wait for submitit, torch and the rest
        from submitit.core.utils import FailedJobError

        from imagenet_multilabel.core.errors import UserError

        # submitit prints sbatch's stderr itself before it raises: keep it for the one line
        held = io.StringIO()
        try:
            with contextlib.redirect_stderr(held):
                jobs = self._submit(job_overrides, initial_job_idx)
        except FailedJobError as e:
            if "sbatch" not in str(e) and "sbatch" not in held.getvalue():
                raise
            raise UserError(refusal_line(str(e) or held.getvalue())) from None
        finally:
            text = "\n".join(
                ln for ln in held.getvalue().splitlines() if not ln.startswith("sbatch: ")
            )
            if text.strip():
                print(text, file=sys.stderr)
        return [
            self._result(job, overrides, initial_job_idx + i)
            for i, (job, overrides) in enumerate(zip(jobs, job_overrides, strict=True))
        ]

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        """The plugin's ``launch`` (hydra-submitit-launcher 1.2) up to the submission: one
        job array, one job per override list; its jobs."""
        # submitit: only when jobs are submitted (Hydra imports plugins at each start)
        import submitit

        assert self.config is not None
        params = self.params
        init_keys = {"submitit_folder", "max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=params["submitit_folder"],
            slurm_max_num_timeout=params["max_num_timeout"],
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in base else f"{self._EXECUTOR}_{key}": value
                for key, value in params.items()
                if key not in init_keys
            }
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        numbers = range(initial_job_idx, initial_job_idx + len(job_overrides))
        for idx, overrides in zip(numbers, job_overrides, strict=True):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        n = len(job_overrides)
        return executor.map_array(  # the arguments of each job's self(...) on its node
            self,
            [list(o) for o in job_overrides],
            ["hydra.sweep.dir"] * n,
            list(numbers),
            [f"job_id_for_{idx}" for idx in numbers],
            [Singleton.get_state()] * n,
        )

    def _result(self, job: Any, overrides: Sequence[str], idx: int) -> JobReturn:
        # submitit: only when jobs are submitted
        from submitit.core.utils import UncompletedJobError

        try:
            return job.results()[0]
        except UncompletedJobError as e:
            state = job.state
            reason = (
                f"SLURM job {job.job_id} ended without a result: {state.lower()} "
                f"(its output: {job.paths.stderr})"
            )
            log.error("job #%d %s", idx, reason)
            print(f"error: job #{idx} {reason}", file=sys.stderr, flush=True)
            return self._record_failure(overrides, idx, reason, e)

    def _record_failure(
        self, overrides: Sequence[str], idx: int, reason: str, error: BaseException
    ) -> JobReturn:
        """``failed.json`` in the job's folder, as the job itself writes it when its task
        fails (unless the job finished its results), and the return of a failed job."""
        # set in the job's process, where this runs
        from hydra.core.hydra_config import HydraConfig

        from imagenet_multilabel.runs.rundir import METRICS_FILE  # (see launch)
        from imagenet_multilabel.sweeps import dirs  # noqa: F401  (${job_dirname:})

        # the package's sweeps (torch): only in a job that failed
        from imagenet_multilabel.sweeps.job import _failed_value, record_failure

        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = idx
        hydra_config, previous = HydraConfig.instance(), HydraConfig.instance().cfg
        hydra_config.set_config(cfg)
        try:
            job_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
            if not (job_dir / METRICS_FILE).is_file():
                job_dir.mkdir(parents=True, exist_ok=True)
                record_failure(job_dir, cfg, reason, error)
            value = _failed_value(cfg)
        finally:
            hydra_config.cfg = previous
        return JobReturn(
            overrides=list(overrides),
            cfg=cfg,
            working_dir=str(job_dir),
            status=JobStatus.COMPLETED,
            _return_value=value,
        )

"""The SLURM launcher of conf/hydra/launcher/submitit_slurm.yaml: hydra-submitit-launcher's,
with a job that SLURM refuses (``sbatch`` fails: an unknown partition, a GPU request on a
cluster without GPUs) ending the sweep with one line that names the launcher setting to
change, instead of a traceback after sbatch's own message."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Sequence
from typing import Any

from hydra_plugins.hydra_submitit_launcher import submitit_launcher

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
        from submitit.core.utils import FailedJobError

        from imagenet_multilabel.errors import UserError

        # submitit prints sbatch's stderr itself before it raises: keep it for the one line
        held = io.StringIO()
        try:
            with contextlib.redirect_stderr(held):
                return super().launch(job_overrides, initial_job_idx)
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

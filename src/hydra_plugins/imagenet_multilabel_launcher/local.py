"""The local launcher of conf/hydra/launcher/submitit_local.yaml: hydra-submitit-launcher's,
with a cap on the jobs that run at once.

submitit's local executor starts every job of a multirun at once (its ``array_parallelism``
is Slurm's only): 50 jobs are 50 processes, each importing torch and building its model,
on however many cores there are. ``+hydra.launcher.array_parallelism=N`` (default 256, as
the Slurm launcher's) hands the jobs to the plugin's launcher N at a time: the next N
start when the last of the previous N has ended (waves; job numbers, folders and
results are those of one launch). The ``+``: the yaml is merged onto the plugin's schema
of the same name, which has no such key (a key stored beside it would depend on the order
in which Hydra loads the plugins).

    python evaluate.py -m hydra/launcher=submitit_local +hydra.launcher.array_parallelism=2 ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from imagenet_multilabel.core.errors import UserError


class LocalLauncher(submitit_launcher.LocalLauncher):
    """The plugin's LocalLauncher, given at most ``array_parallelism`` jobs per launch."""

    def __init__(self, array_parallelism: int = 256, **params: Any) -> None:
        if int(array_parallelism) < 1:
            raise UserError(
                f"hydra.launcher.array_parallelism={array_parallelism}: the number of jobs "
                "run at once must be 1 or more"
            )
        super().__init__(**params)
        self.array_parallelism = int(array_parallelism)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        results: list[JobReturn] = []
        for start in range(0, len(job_overrides), self.array_parallelism):
            wave = job_overrides[start : start + self.array_parallelism]
            results += super().launch(wave, initial_job_idx + start)
        return results

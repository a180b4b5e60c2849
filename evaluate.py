"""Evaluate a pretrained timm model with single- and multi-label heads.

python evaluate.py                                   # embedded default, demo photos
python evaluate.py model=resnet50 data=folder data.root=/data/imagenet/val
python evaluate.py -m model=resnet50,vit_b16 data=imagenet,imagenetv2   # -> leaderboard
python evaluate.py model.names='convnext_*' data=imagenet data.root=...  # many models
python evaluate.py -m model=resnet50,vit_b16 data=imagenet resume=last   # continue a sweep
"""

import sys

import hydra
from omegaconf import DictConfig

from imagenet_multilabel.checks import check_run_settings
from imagenet_multilabel.core.config import in_multirun
from imagenet_multilabel.entry.run import hydra_main, run_task
from imagenet_multilabel.sweeps.launch import prepare_argv_or_exit


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict:
    if in_multirun():
        # a job of a sweep: complete work skipped, a failure recorded while the sweep goes
        # on; the job checks its settings itself (sweeps/job.py)
        return run_task("imagenet_multilabel.sweeps.job:evaluate_job", cfg, trainer=True)
    # the settings are checked before torch and the task's modules are imported
    return run_task(
        "imagenet_multilabel.tasks.evaluate:evaluate", cfg, trainer=True, check=check_run_settings
    )


if __name__ == "__main__":
    sys.argv = prepare_argv_or_exit(sys.argv)
    hydra_main(main)

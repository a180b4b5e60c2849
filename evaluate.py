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

from imagenet_multilabel.commands.run import hydra_main, in_multirun, run_task
from imagenet_multilabel.core.checks import check_run_settings
from imagenet_multilabel.sweeps.launch import prepare_argv_or_exit


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict:
    # A single run reports a config error before torch and the rest are imported; in a
    # sweep the job records its error and the sweep goes on (sweeps/job.py).
    return run_task(
        "imagenet_multilabel.sweeps.job:evaluate_job",
        cfg,
        trainer=True,
        check=None if in_multirun() else check_run_settings,
    )


if __name__ == "__main__":
    sys.argv = prepare_argv_or_exit(sys.argv)
    hydra_main(main)

"""Evaluate a pretrained timm model with single- and multi-label heads.

python evaluate.py                                   # embedded default, demo photos
python evaluate.py model=resnet50 data=folder data.root=/data/imagenet/val
python evaluate.py -m model=resnet50,vit_b16 data=imagenet,imagenetv2
"""

import hydra
from omegaconf import DictConfig

from imagenet_multilabel.cli import run_task
from imagenet_multilabel.preflight import check_run_settings


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict:
    # the task (torch, timm, Lightning) is imported once the config has passed its checks
    return run_task(
        "imagenet_multilabel.tasks.evaluate:evaluate", cfg, trainer=True, check=check_run_settings
    )


if __name__ == "__main__":
    main()

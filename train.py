"""Fine-tune a pretrained timm model with a multi-label loss and compare it with the
pretrained one (held-out images, held-out classes, single photos).

python train.py                                      # head-only BCE on demo composites
python train.py loss=asl finetune.mode=full data=imagenet data.root=... labels=real
python train.py -m loss=bce,asl optim.lr=1e-3,1e-4
python train.py -m loss=bce,asl optim.lr=1e-3,1e-4 resume=last     # continue a sweep
"""

import sys

import hydra
from omegaconf import DictConfig

from imagenet_multilabel.checks import check_train_settings
from imagenet_multilabel.core.config import in_multirun
from imagenet_multilabel.entry.run import hydra_main, run_task
from imagenet_multilabel.sweeps.launch import prepare_argv_or_exit


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    if in_multirun():
        # a job of a sweep: complete work skipped, a failure recorded while the sweep goes
        # on; the job checks its settings itself (sweeps/job.py)
        return run_task("imagenet_multilabel.sweeps.job:train_job", cfg, trainer=True)
    # the settings are checked before torch and the task's modules are imported
    return run_task(
        "imagenet_multilabel.tasks.train:train", cfg, trainer=True, check=check_train_settings
    )


if __name__ == "__main__":
    sys.argv = prepare_argv_or_exit(sys.argv, task="train")
    hydra_main(main)

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

from imagenet_multilabel.commands.run import hydra_main, in_multirun, run_task
from imagenet_multilabel.core.checks import check_train_settings
from imagenet_multilabel.sweeps.launch import prepare_argv_or_exit


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    # A single run reports a config error before torch and the rest are imported; in a
    # sweep the job checks its settings when it starts, records a failure and the sweep
    # goes on (sweeps/job.py).
    return run_task(
        "imagenet_multilabel.sweeps.job:train_job",
        cfg,
        trainer=True,
        check=None if in_multirun() else check_train_settings,
    )


if __name__ == "__main__":
    sys.argv = prepare_argv_or_exit(sys.argv, task="train")
    hydra_main(main)

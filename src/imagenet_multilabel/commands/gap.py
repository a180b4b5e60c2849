"""python -m imagenet_multilabel gap a=<run dir> b=<run dir> [a_dataset=...] [b_dataset=...]"""

import hydra
from omegaconf import DictConfig

from imagenet_multilabel.entry.run import hydra_main, run_task


@hydra.main(version_base="1.3", config_path="../../../conf", config_name="gap")
def main(cfg: DictConfig) -> dict:
    return run_task("imagenet_multilabel.tasks.gap:gap", cfg)


if __name__ == "__main__":
    hydra_main(main)

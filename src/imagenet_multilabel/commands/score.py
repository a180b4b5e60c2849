"""python -m imagenet_multilabel score run_dir=<finished run> [labels=...] [head=...]"""

import hydra
from omegaconf import DictConfig

from imagenet_multilabel.entry.run import hydra_main, run_task


@hydra.main(version_base="1.3", config_path="../../../conf", config_name="score")
def main(cfg: DictConfig) -> dict:
    return run_task("imagenet_multilabel.tasks.score:score", cfg)


if __name__ == "__main__":
    hydra_main(main)

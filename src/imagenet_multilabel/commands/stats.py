"""python -m imagenet_multilabel stats labels=real [compare=[multilabelfy]]"""

import hydra
from omegaconf import DictConfig

from imagenet_multilabel.entry.run import hydra_main, run_task


@hydra.main(version_base="1.3", config_path="../../../conf", config_name="stats")
def main(cfg: DictConfig) -> dict:
    return run_task("imagenet_multilabel.tasks.stats:stats", cfg)


if __name__ == "__main__":
    hydra_main(main)

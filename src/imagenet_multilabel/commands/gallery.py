"""python -m imagenet_multilabel gallery run_dir=<finished run> [dataset=...] [gallery.*=...]"""

import hydra
from omegaconf import DictConfig

from imagenet_multilabel.entry.run import hydra_main, run_task
from imagenet_multilabel.reports.gallery.build import gallery


@hydra.main(version_base="1.3", config_path="../../../conf", config_name="gallery")
def main(cfg: DictConfig) -> dict:
    return run_task(gallery, cfg)


if __name__ == "__main__":
    hydra_main(main)

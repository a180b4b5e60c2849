"""Shared fixtures: composed Hydra configs in tmp dirs and small real datasets built from
the real photos and label files in ../shared/data."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from imagenet_multilabel.config import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IMAGENET_ML_SHARED", REPO.parent / "shared" / "data"))
SAMPLE = SHARED / "imagenet-sample"


def sample_photos() -> list[Path]:
    photos = sorted(SAMPLE.glob("n*.JPEG"))
    assert len(photos) == 1000, f"expected the 1000 photos of {SAMPLE}"
    return photos


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a config of conf/ with overrides; outputs go to a fresh tmp dir: ``run`` for
    the first ``evaluate`` config, then ``<config name>-<n>``, so that no two composed
    runs of a test share a folder."""
    made: list[str] = []

    def _compose(*overrides: str, config_name: str = "evaluate") -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            first = config_name == "evaluate" and "run" not in made
            made.append("run" if first else f"{config_name}-{len(made)}")
            cfg.paths.output_dir = str(tmp_path / made[-1])
            cfg.paths.shared_data = str(SHARED)
            if "trainer" in cfg:
                cfg.num_workers = 0
                cfg.callbacks = {}
                cfg.trainer.enable_progress_bar = False
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


def make_wnid_folders(root: Path, photos: list[Path]) -> Path:
    """ImageNet val layout: root/<wnid>/<file>.JPEG, files copied from the real sample."""
    for photo in photos:
        wnid = photo.name.split("_", 1)[0]
        (root / wnid).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, root / wnid / photo.name)
    return root


@pytest.fixture
def wnid_folder(tmp_path: Path) -> Path:
    """13 real photos (every 83rd class) in wnid folders."""
    return make_wnid_folders(tmp_path / "val", sample_photos()[::83])

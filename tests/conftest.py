"""Shared fixtures: composed Hydra configs in tmp dirs, and real photos in wnid folders.
What the tests share besides fixtures (paths, photos, the command runner, fake runs) is in
tests/helpers.py."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# pytest-xdist workers that fill every core run torch on one thread each (and so do the
# processes they start): two threads per worker on such a machine only oversubscribe it.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) >= (os.cpu_count() or 1):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from imagenet_multilabel.core.config import CONFIG_DIR
from tests.helpers import make_wnid_folders

pytest_plugins = ["tests.shared_audit"]


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a config of conf/ with overrides. Each call gets its own output folder that
    does not exist yet (``tmp_path/run``, then ``run-2``, ...), so that two runs of a test
    never share files. Callbacks (progress bars) are left out unless ``keep_callbacks``."""
    numbers = itertools.count(1)

    def _compose(
        *overrides: str, config_name: str = "evaluate", keep_callbacks: bool = False
    ) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        out = next(
            o for n in numbers if not (o := tmp_path / ("run" if n == 1 else f"run-{n}")).exists()
        )
        with open_dict(cfg):
            cfg.paths.output_dir = str(out)
            if "trainer" in cfg:
                cfg.num_workers = 0
                if not keep_callbacks:
                    cfg.callbacks = {}
                    cfg.trainer.enable_progress_bar = False
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def wnid_folder(tmp_path: Path) -> Path:
    """13 real photos (every 83rd class) in wnid folders."""
    return make_wnid_folders(tmp_path / "val", range(0, 1000, 83))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (the README's ``-n auto``), the tests that start a real Slurm on
    this machine (the ``slurm_cluster`` fixture, one per worker process, and the daemons'
    own tests) run on one worker, in turn, and so do the tests of a module that share one of
    its module-scoped fixtures (a run, a browser), which each worker would otherwise make
    again; and the modules that hold a test marked ``slow`` are handed out first (whole,
    in their order: a module split around others would set its fixtures up again), so
    that the quick ones fill the workers' last minutes instead of one worker finishing a
    long test alone."""
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker: every worker sorts alike
        slow = {item.path for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: item.path not in slow)
    for item in items:
        slurm = "slurm_cluster" in getattr(item, "fixturenames", ())
        if slurm or item.get_closest_marker("slurm") or item.path.name.startswith("test_slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))
        elif _uses_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    return any(d and d[-1].scope == "module" for d in defs)

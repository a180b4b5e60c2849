"""Every config option composes and instantiates."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from imagenet_multilabel.config import CONFIG_DIR, dataset_specs, instantiate_map
from imagenet_multilabel.models.backbones import check_model_name
from imagenet_multilabel.models.heads import Head
from imagenet_multilabel.tasks.evaluate import evaluate


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def test_default_config(compose_cfg) -> None:
    cfg = compose_cfg()
    assert cfg.model.name == "tf_efficientnet_lite0"
    assert cfg.model.weights == "lite0_package"
    assert list(dataset_specs(cfg.data)) == ["demo", "patchml"]
    assert set(cfg.head) == {"single", "multilabel"}
    assert cfg.trainer.use_distributed_sampler is False


@pytest.mark.parametrize("option", options("model"))
def test_model_options_name_real_timm_models(compose_cfg, option: str) -> None:
    cfg = compose_cfg(f"model={option}")
    assert check_model_name(cfg.model.name) == cfg.model.name.split(".")[0]
    assert cfg.model.weights in ("hub", "lite0_package", "none")


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_options_instantiate(compose_cfg, option: str) -> None:
    cfg = compose_cfg(
        f"trainer={option}", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.strategy=auto"
    )
    trainer = instantiate(cfg.trainer, logger=False)
    assert isinstance(trainer, L.Trainer)


@pytest.mark.parametrize("option", options("logger"))
def test_logger_options_instantiate(compose_cfg, option: str) -> None:
    cfg = compose_cfg(f"logger={option}")
    loggers = instantiate_map(cfg.logger)
    for logger in loggers.values():
        assert Path(logger.save_dir) == Path(cfg.paths.output_dir)


@pytest.mark.parametrize("option", options("head"))
def test_head_options_instantiate(compose_cfg, option: str) -> None:
    cfg = compose_cfg(f"head={option}")
    heads = instantiate_map(cfg.head, skip=("if_labels",))
    assert heads and all(isinstance(h, Head) for h in heads.values())


@pytest.mark.parametrize("option", options("callbacks"))
def test_callback_options_run_in_an_evaluation(compose_cfg, wnid_folder, option, monkeypatch):
    """Each configured callback is instantiated by evaluate and called on every batch."""
    cfg = compose_cfg(
        "model=test_tiny",
        "data=folder",
        f"data.root={wnid_folder}",
        "batch_size=5",
        f"callbacks={option}",
        keep_callbacks=True,
    )
    configured = OmegaConf.load(CONFIG_DIR / "callbacks" / f"{option}.yaml")
    assert set(cfg.callbacks) == set(configured)
    built = instantiate_map(cfg.callbacks)
    assert len(built) == len(configured) and all(isinstance(c, L.Callback) for c in built.values())
    if option == "default":
        assert built  # the default has a progress bar

    passed: list[L.Callback] = []  # what evaluate gives the Trainer
    trainer_init = L.Trainer.__init__

    def init(self, *args, **kwargs):
        passed.extend(kwargs.get("callbacks") or [])
        return trainer_init(self, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", init)
    calls: Counter[int] = Counter()  # batches seen, by callback object
    for callback in built.values():
        cls = type(callback)
        original = cls.on_validation_batch_end

        def spy(self, *args, _original=original, **kwargs):
            calls[id(self)] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "on_validation_batch_end", spy)
    evaluate(cfg)
    # the configured callbacks, not Lightning's defaults, each called on the 3 batches
    assert sorted(type(c).__name__ for c in passed) == sorted(
        type(c).__name__ for c in built.values()
    )
    assert [calls[id(c)] for c in passed] == [3] * len(passed)  # 13 images, batches of 5


@pytest.mark.parametrize("option", options("data"))
def test_data_options_compose(compose_cfg, option: str) -> None:
    specs = dataset_specs(compose_cfg(f"data={option}").data)
    assert specs and all("_target_" in s for s in specs.values())

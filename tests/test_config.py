"""Every config option composes and instantiates."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate

from imagenet_multilabel.builders import dataset_specs
from imagenet_multilabel.config import CONFIG_DIR, instantiate_map
from imagenet_multilabel.models.backbones import check_model_name
from imagenet_multilabel.models.heads import Head


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
    # model=timm names no model itself (model.name=... or model.names=... do)
    name = ["model.name=resnet50.a1_in1k"] if option == "timm" else []
    cfg = compose_cfg(f"model={option}", *name)
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
def test_callback_options_instantiate(compose_cfg, option: str) -> None:
    cfg = compose_cfg(f"callbacks={option}")
    for callback in instantiate_map(cfg.callbacks).values():
        assert isinstance(callback, L.Callback)


@pytest.mark.parametrize("option", options("data"))
def test_data_options_compose(compose_cfg, option: str) -> None:
    specs = dataset_specs(compose_cfg(f"data={option}").data)
    assert specs and all("_target_" in s for s in specs.values())

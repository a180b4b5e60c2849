"""Every config option composes and instantiates."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from imagenet_multilabel.builders import dataset_specs
from imagenet_multilabel.core.config import CONFIG_DIR, instantiate_map
from imagenet_multilabel.models.backbones import LITE_PACKAGES, WEIGHT_SOURCES, check_model_name
from imagenet_multilabel.scoring.heads import Head
from imagenet_multilabel.tasks.evaluate import evaluate
from tests.helpers import run


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
    assert cfg.model.weights in WEIGHT_SOURCES
    if cfg.model.weights in LITE_PACKAGES:  # a package's weights only fit their own model
        assert LITE_PACKAGES[cfg.model.weights].model == cfg.model.name


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


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data=imagenetv2"], r"pass data.root=\.\.\. \(.*prepare imagenetv2 --root DIR\)"),
        (["data=folder", "data.root=/nonexistent/val"], "/nonexistent/val does not exist"),
        (["data=folder", f"data.root={__file__}"], "is a file, not a folder"),
        (["batch_size=0"], "batch_size=0 is not valid"),
        (["cpu_threads=0"], "cpu_threads=0 is not valid"),
        (["predictions.logits_dtype=int8"], "logits_dtype='int8' is not supported"),
        (["preprocess.crop_pct=1.5"], r"crop_pct=1.5 must be in \(0, 1\]"),
        (["preprocess.img_size=-5"], "img_size=-5 must be a positive"),
        (["preprocess.interpolation=foo"], "interpolation='foo' is unknown"),
        (["labels=file"], "labels=file needs labels.path: pass labels.path="),
        (["labels=shankar"], "labels=shankar needs labels.path"),
    ],
)
def test_settings_are_checked_before_anything_is_built(compose_cfg, overrides, expected) -> None:
    """These fail in preflight, which imports neither torch nor timm (the entry point runs
    it before importing the task)."""
    from imagenet_multilabel.checks import check_run_settings
    from imagenet_multilabel.core.errors import UserError

    with pytest.raises(UserError, match=expected):
        check_run_settings(compose_cfg(*overrides))
    cfg = compose_cfg()  # (the fixture sets num_workers=0 after composing)
    cfg.num_workers = -1
    with pytest.raises(UserError, match="num_workers=-1 is not valid"):
        check_run_settings(cfg)


def test_preflight_imports_nothing_heavy() -> None:
    code = (
        "import sys, imagenet_multilabel.checks, imagenet_multilabel.entry.run; "
        "print(sorted(m for m in ('torch', 'timm', 'lightning', 'wandb') if m in sys.modules))"
    )
    out = run(["-c", code], check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet5", "unknown timm model 'resnet5'"),
        ("resnet50.foo", "Invalid pretrained tag"),
        ("vit_base_patch16_224.augreg_in21k", "predicts 21843 classes"),
    ],
)
def test_model_checked_before_it_is_created(name: str, expected: str) -> None:
    from imagenet_multilabel.core.errors import ModelError
    from imagenet_multilabel.models.checks import check_model

    with pytest.raises(ModelError, match=expected):
        check_model({"name": name, "kwargs": {}})
    with pytest.raises(ModelError, match="predicts 10 classes"):
        check_model({"name": "resnet50", "kwargs": {"num_classes": 10}})

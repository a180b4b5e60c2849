"""The optimizer names of timm kept in training/timm_optimizers.py: the installed timm's
own, so that ``optim.opt`` is judged before torch is imported (training/checks.py)."""

from __future__ import annotations

import importlib.metadata

import pytest
from timm.optim import list_optimizers

from imagenet_multilabel.checks import check_train_settings
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.training import timm_optimizers
from imagenet_multilabel.training.checks import check_training_settings

REGENERATE = "after upgrading timm, run: python scripts/vendor_timm_optimizers.py"


def test_the_listed_names_are_the_installed_timms() -> None:
    installed = importlib.metadata.version("timm")
    assert installed == timm_optimizers.TIMM_VERSION, f"timm is {installed}: {REGENERATE}"
    assert tuple(list_optimizers()) == timm_optimizers.NAMES, REGENERATE


# (optim.opt, the line): the config check's, before torch, with close matches
UNKNOWN = [
    ("foo", "optim.opt='foo' is not an optimizer of timm: use e.g. adam, adamw, sgd"),
    ("adamz", "optim.opt='adamz' is not an optimizer of timm: use e.g. adabelief, adadelta, "),
    ("lookahead_sgdx", "optim.opt='lookahead_sgdx' is not an optimizer of timm: use e.g. "),
]


@pytest.mark.parametrize(("opt", "line"), UNKNOWN)
def test_an_unknown_optimizer_is_refused_by_the_config_check(compose_cfg, opt, line) -> None:
    cfg = compose_cfg(f"optim.opt={opt}", config_name="train")
    with pytest.raises(UserError) as early:
        check_training_settings(cfg)  # the part before Lightning and timm are imported
    assert str(early.value).startswith(line)
    assert str(early.value).endswith("(timm.optim.list_optimizers())")


@pytest.mark.parametrize("opt", ["adamw", "SGD", "nesterov", "lookahead_adam", "lamb"])
def test_an_optimizer_of_timm_passes(compose_cfg, opt) -> None:
    check_train_settings(compose_cfg(f"optim.opt={opt}", config_name="train"))


def test_another_timm_version_is_judged_by_timms_own_list(compose_cfg, monkeypatch) -> None:
    cfg = compose_cfg("optim.opt=adamz", config_name="train")
    with pytest.raises(UserError) as listed:
        check_train_settings(cfg)
    monkeypatch.setattr(timm_optimizers, "TIMM_VERSION", "0.0.0")
    check_training_settings(cfg)  # the list is not this timm's: the early check passes
    with pytest.raises(UserError) as asked:
        check_train_settings(cfg)  # the late check asks timm
    assert str(asked.value) == str(listed.value)

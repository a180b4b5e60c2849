"""Where conf/ lives, instantiating name -> spec mappings of it (loggers, callbacks), and
nested settings as dotted keys."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.core.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
ASSETS = PACKAGE_DIR / "assets"  # shipped with the package (package-data)
CONFIG_DIR = PACKAGE_DIR.parents[1] / "conf"


def config_dir() -> str:
    if not (CONFIG_DIR / "evaluate.yaml").is_file():
        raise UserError(
            f"config folder {CONFIG_DIR} not found: install the package from its repository "
            "with pip install -e ."
        )
    return str(CONFIG_DIR)


def config_option(group: str, name: str) -> DictConfig:
    """The YAML of one option of a config group (``conf/<group>/<name>.yaml``), for options
    named by value rather than selected (e.g. ``stats compare=[multilabelfy]``)."""
    path = Path(config_dir()) / group / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise UserError(f"no {group} option '{name}': use one of {', '.join(options)}")
    return OmegaConf.load(path)


def dataset_specs(data: DictConfig) -> dict[str, DictConfig]:
    """The datasets of a ``data`` node, by config key: the node itself if it has a
    ``_target_``, else each child that has one (a suite: several datasets evaluated with
    one model load)."""
    if "_target_" in data:
        return {"data": data}
    specs = {str(k): v for k, v in data.items() if isinstance(v, DictConfig) and "_target_" in v}
    if not specs:
        raise UserError("the data config names no dataset: choose one with data=<option>")
    return specs


def dataset_names(cfg: DictConfig) -> list[str]:
    """The names the datasets of ``cfg.data`` will have (for a job that failed before)."""
    from hydra.utils import get_class  # imports the dataset's module only when it has no name

    try:
        specs = dataset_specs(cfg.data)
    except Exception:
        return []
    names = []
    for key, spec in specs.items():
        name = spec.get("name")
        if not name and key == "data":
            try:
                name = getattr(get_class(spec._target_), "name", None)
            except Exception:
                name = None
        names.append(str(name or key))
    return names


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``)."""

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def is_missing(node: Mapping[str, Any], key: Any) -> bool:
    """``key`` of ``node`` has the mandatory-value mark ``???`` (a config node or a plain
    mapping read from YAML)."""
    if isinstance(node, DictConfig):
        return OmegaConf.is_missing(node, key)
    return node.get(key) == "???"


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


def dotted(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``),
    as the settings are spelt on the command line."""
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(dotted(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}

"""Several label sets asked for in one command: ``labels=[real,tsipras]`` and
``labels.min_score=[0.5,0.8,0.95]``.

Hydra merges the options of ``labels=[a,b]`` into one node (the last wins), so the
commands that compare label sets (``score``, ``stats``) read the names from the command
line's overrides and compose each option on its own (:func:`label_options`); a list of
operating points gives one option per point (:func:`expand_points`), named
``<name>@<point>`` as the label set it builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from imagenet_multilabel.core.config import config_option
from imagenet_multilabel.core.errors import UserError

GROUP = "labels"
POINT = "min_score"


def _plain(node: Any) -> dict[str, Any]:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return dict(node)


def _chosen_names(overrides: Sequence[str]) -> list[str] | None:
    """The names of ``labels=[a,b,...]`` among ``overrides`` (None: no list given)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser  # Hydra's grammar

    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.key_or_group == GROUP and override.package is None:
            value = override.value()
            if isinstance(value, list):
                return [str(v) for v in value]
    return None


def label_options(labels: Any, overrides: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The label-set options asked for, one plain dict each, points expanded.

    Args:
        labels: the composed ``labels`` node (one option, or a list of options).
        overrides: the command line's overrides; ``labels=[a,b]`` there names several
            options, each composed from ``conf/labels/<a>.yaml`` with the values of any
            ``labels.<key>=`` override that option has (taken from ``labels``, as Hydra
            parsed them).
    """
    names = _chosen_names(overrides)
    if isinstance(labels, (list, tuple, ListConfig)):
        nodes = [_plain(n) for n in labels]
    elif names is None:
        nodes = [_plain(labels)] if labels is not None else []
    else:
        set_keys = {
            o.split("=", 1)[0].lstrip("+~").split(".", 1)[1]
            for o in overrides
            if o.lstrip("+~").startswith(GROUP + ".") and "=" in o
        }
        merged = _plain(labels) if labels is not None else {}
        nodes = []
        for name in names:
            node = _plain(config_option(GROUP, name))
            for key in set_keys:
                if key in node and key in merged:
                    node[key] = merged[key]
            nodes.append(node)
    return [point for node in nodes for point in expand_points(node)]


def expand_points(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One option per operating point of a list-valued ``min_score`` (the option itself
    otherwise), named ``<name>@<point>``."""
    points = node.get(POINT)
    if not isinstance(points, (list, tuple, ListConfig)):
        return [dict(node)]
    if not points:
        raise UserError(f"labels.{POINT}=[] names no operating point: give e.g. [0.5,0.8,0.95]")
    out = []
    for point in points:
        one = dict(node)
        one[POINT] = point
        if point is not None:
            one["name"] = f"{node.get('name')}@{float(point):g}"
        out.append(one)
    return out


def command_overrides() -> list[str]:
    """The running Hydra command's task overrides ([] outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig  # only where a Hydra run is on

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)

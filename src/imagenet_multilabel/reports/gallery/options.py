"""The gallery's options: the ``gallery:`` node of conf/gallery.yaml (the one place their
defaults are written), overridden by whatever node a caller passes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.core.config import config_dir
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.runs.checks import check_can_create


@dataclass(frozen=True)
class GalleryOptions:
    per_section: int
    seed: int
    image_root: Path | None
    output_dir: Path | None
    thumb_size: int
    confident: float
    exemplars: Path | str | None  # RUN, a folder, or None (no exemplars)
    exemplar_size: int


RUN = "run"  # exemplars from the run's own images


def _defaults() -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(Path(config_dir()) / "gallery.yaml").gallery)


def gallery_options(node: DictConfig | Mapping[str, Any] | bool | None = None) -> GalleryOptions:
    """Options from a config node; ``None`` or ``True`` (``gallery=true`` of an
    evaluation) take every default. Unknown keys and out-of-range values are UserErrors."""
    values = _defaults()
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    if isinstance(node, Mapping):
        unknown = sorted(set(node) - set(values))
        if unknown:
            raise UserError(
                f"unknown gallery option(s) {', '.join(unknown)}: use {', '.join(values)}"
            )
        values.update(node)
    elif node not in (None, True):
        raise UserError(f"gallery must be true, false or a node of options, not {node!r}")

    def number(key: str, kind: type, lo: float, hi: float) -> Any:
        try:
            value = kind(values[key])
        except (TypeError, ValueError):
            raise UserError(f"gallery.{key} must be a number, not {values[key]!r}") from None
        if not lo <= value <= hi:
            raise UserError(f"gallery.{key}={value} is out of range: use {lo:g} to {hi:g}")
        return value

    def path(key: str) -> Path | None:
        return None if values[key] in (None, "") else Path(str(values[key])).expanduser()

    def exemplars() -> Path | str | None:
        value = values["exemplars"]
        if value in (None, False) or str(value).lower() in ("none", "false", ""):
            return None
        if value is True or str(value) == RUN:
            return RUN
        return Path(str(value)).expanduser()

    return GalleryOptions(
        per_section=number("per_section", int, 1, 10_000),
        seed=number("seed", int, 0, 2**63 - 1),
        image_root=path("image_root"),
        output_dir=path("output_dir"),
        thumb_size=number("thumb_size", int, 32, 1024),
        confident=number("confident", float, 0.0, 1.0),
        exemplars=exemplars(),
        exemplar_size=number("exemplar_size", int, 16, 512),
    )


def check_gallery(node: DictConfig | Mapping[str, Any] | bool | None) -> None:
    """A run's ``gallery`` option (what it writes at its end): its output folder can be
    made, its exemplars' folder exists (null or false: no gallery)."""
    if node in (None, False):
        return
    options = gallery_options(node)
    if options.output_dir is not None:
        check_can_create(options.output_dir, "gallery.output_dir")
    folder = options.exemplars
    if isinstance(folder, Path) and not folder.is_dir():  # its images are read at the end
        what = "does not exist" if not folder.exists() else "is a file"
        raise UserError(
            f"gallery.exemplars={folder} {what}: point it at a folder of photos, or use "
            "gallery.exemplars=run (other photos of the run) or none"
        )

"""Class subsets of the 1000 ImageNet classes (ImageNet-A and -R have 200): parsing, the
official lists, and the restriction of logits to a subset before scoring.

A subset is always a sorted tuple of distinct ImageNet-1k class indices. Targets stay
1000-class indices; only the scorer looks at the subset (:func:`restrict_logits`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

import timm.data
import torch
from torch import Tensor

from imagenet_multilabel.core.classes import NUM_CLASSES, wnid_to_index, wnids
from imagenet_multilabel.core.errors import DataError

log = logging.getLogger(__name__)

# Named subsets: the class lists timm ships in timm/data/_info/<name>_synsets.txt.
NAMED_SUBSETS = {"imagenet_a": "ImageNet-A", "imagenet_r": "ImageNet-R"}

ClassSubsetSpec = str | Path | Sequence[int | str] | None


@cache
def official_wnids(name: str) -> tuple[str, ...]:
    """The wnids of a named subset (``imagenet_a`` or ``imagenet_r``), from timm's copy of
    the dataset's class list, in file order."""
    if name not in NAMED_SUBSETS:
        raise DataError(f"unknown class subset {name!r}: use one of {', '.join(NAMED_SUBSETS)}")

    path = Path(timm.data.__file__).parent / "_info" / f"{name}_synsets.txt"
    if not path.is_file():
        raise DataError(f"timm has no {path.name}: upgrade timm (pip install -U timm)")
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def _class_of(token: str | int, where: str) -> int:
    """The class index of one subset entry: a wnid or an integer index 0..999."""
    if isinstance(token, bool):
        raise DataError(f"{where}: {token!r} is not a class (use a wnid or an index 0..999)")
    text = str(token).strip()
    if isinstance(token, int) or text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < NUM_CLASSES:
            raise DataError(f"{where}: class index {index} is out of range 0..{NUM_CLASSES - 1}")
        return index
    index = wnid_to_index().get(text)
    if index is None:
        raise DataError(
            f"{where}: {text!r} is not an ImageNet-1k WordNet id (like n01440764) or an "
            "index 0..999"
        )
    return index


def _read_subset_file(path: Path) -> list[str]:
    """The first token of every line (blank lines and ``#`` comments skipped), so that
    ``wnid name`` tables work as they are."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read class subset file {path} ({e})") from None
    tokens = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            tokens.append(line.replace(",", " ").split()[0])
    return tokens


def parse_class_subset(spec: ClassSubsetSpec) -> tuple[int, ...] | None:
    """A class subset from a config value, as sorted distinct class indices.

    ``spec``: None (no subset); a list of wnids and/or indices; a named subset
    (``imagenet_a``, ``imagenet_r``: timm's lists); or a file with one class per line
    (a wnid or an index; anything after the first whitespace is ignored).

    Raises:
        DataError: unknown wnid, index out of range, missing file, or an empty subset.
    """
    if spec is None:
        return None
    if isinstance(spec, (str, Path)):
        text = str(spec).strip()
        if text in NAMED_SUBSETS:
            tokens: Iterable[str | int] = official_wnids(text)
            where = f"class subset {text}"
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise DataError(
                    f"class subset file {path} does not exist: pass data.class_subset=FILE "
                    f"(one wnid or index per line), a list, or one of {', '.join(NAMED_SUBSETS)}"
                )
            tokens, where = _read_subset_file(path), str(path)
    else:
        tokens, where = list(spec), "data.class_subset"
    subset = tuple(sorted({_class_of(t, where) for t in tokens}))
    if not subset:
        raise DataError(f"{where} names no class: give at least one wnid or index")
    return subset


def check_targets_in_subset(
    files: Sequence[str], targets: Sequence[int], subset: Sequence[int], root: Path
) -> None:
    """Raise a one-line DataError naming the first image (its class folder, if any) whose
    class is not in ``subset``."""
    allowed = set(subset)
    for f, t in zip(files, targets, strict=True):
        if t not in allowed:
            where = f.rsplit("/", 1)[0] if "/" in f else f
            raise DataError(
                f"{root / where} has class {wnids()[t]} (index {t}), which is not in "
                f"data.class_subset ({len(allowed)} classes): remove it or add its class"
            )


def compare_with_official(present: Iterable[int], name: str, root: Path) -> None:
    """Check the classes found under ``root`` against a named subset's official list:
    a class outside it is an error (probably the wrong dataset), missing classes a
    warning (a partial copy)."""
    official = {wnid_to_index()[w] for w in official_wnids(name)}
    present = set(present)
    extra = sorted(present - official)
    if extra:
        raise DataError(
            f"{root} has class folder {wnids()[extra[0]]}, which is not one of the "
            f"{len(official)} {NAMED_SUBSETS[name]} classes ({len(extra)} such folders): "
            f"check data.root (is it {NAMED_SUBSETS[name]}?)"
        )
    missing = sorted(official - present)
    if missing:
        log.warning(
            "%s holds %d of the %d %s classes (missing e.g. %s): a partial copy; "
            "class_subset is the %d classes present",
            root,
            len(present),
            len(official),
            NAMED_SUBSETS[name],
            ", ".join(wnids()[i] for i in missing[:3]),
            len(present),
        )


def restrict_logits(logits: Tensor, class_subset: Sequence[int] | None) -> Tensor:
    """Logits with every class outside ``class_subset`` set to ``-inf`` (a new tensor;
    shape ``N x C`` kept), so argmax, top-k, softmax and every metric computed from them
    are those of the classifier restricted to the subset. ``None`` returns ``logits``.

    Classes keep their 1000-class indices, so targets and label sets need no remapping.
    """
    if class_subset is None:
        return logits
    if logits.ndim != 2:
        raise ValueError(f"logits must be N x C, got shape {tuple(logits.shape)}")
    index = torch.as_tensor(list(class_subset), dtype=torch.long, device=logits.device)
    if index.numel() == 0:
        raise ValueError("class_subset is empty")
    if int(index.min()) < 0 or int(index.max()) >= logits.shape[1]:
        raise ValueError(f"class_subset has indices outside 0..{logits.shape[1] - 1}")
    if not logits.is_floating_point():
        logits = logits.float()
    out = torch.full_like(logits, float("-inf"))
    out[:, index] = logits[:, index]
    return out

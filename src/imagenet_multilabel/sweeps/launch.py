"""What ``evaluate.py`` does to its command line before Hydra sees it.

- ``model.names=SPEC`` sweeps many timm models in one command. SPEC is a comma list
  (``[a,b]`` or ``a,b``) whose items are model names, timm patterns (``'resnet5*'``,
  resolved with ``timm.list_models(pattern, pretrained=True)``) or files of such items (one a
  line, ``#`` comments). It becomes ``model=timm model.name=a,b,...`` (timm's pretrained
  weights; keep your own ``model=...`` to change that, e.g. ``model=test_tiny`` for random
  weights) and implies ``-m``.
- ``resume=last`` or ``resume=<sweep dir>`` continues a sweep: it becomes
  ``hydra.sweep.dir=<that dir>`` (``last``: the most recent under
  outputs/<evaluate|train>/multirun) and implies ``-m``. Jobs whose results are complete
  are skipped (see :mod:`.job`). ``train.py`` takes the same two.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from imagenet_multilabel.core.errors import ModelError, UserError

log = logging.getLogger(__name__)


def sweeps_root(task: str = "evaluate") -> Path:
    """Where a task's sweeps go by default (conf/hydra/default.yaml's sweep.dir:
    ``outputs/${task_name}/multirun``)."""
    return Path("outputs") / task / "multirun"


MULTIRUN_FLAGS = ("-m", "--multirun")
_GLOB = re.compile(r"[*?\[]")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _split(spec: str) -> list[str]:
    spec = spec.strip()
    if spec.startswith("[") and spec.endswith("]"):
        spec = spec[1:-1]
    return [item.strip().strip("'\"") for item in spec.split(",") if item.strip()]


def _read_names_file(path: Path) -> list[str]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        items += _split(line) if line else []
    if not items:
        raise UserError(f"model.names file {path} lists no model: one name or pattern a line")
    return items


def _pattern(pattern: str) -> list[str]:
    import timm  # timm imports torch: only for a model.names pattern

    names = timm.list_models(pattern, pretrained=True)
    if not names:
        raise UserError(
            f"no pretrained timm model matches '{pattern}': check the pattern with "
            "timm.list_models(pattern, pretrained=True)"
        )
    return list(names)


def resolve_model_names(spec: str, cwd: Path | None = None) -> list[str]:
    """The model names of a ``model.names`` value, in order, without duplicates."""
    cwd = cwd or Path.cwd()
    names: list[str] = []
    pending = _split(spec)
    if not pending:
        raise UserError("model.names is empty: pass names, a timm pattern or a file of names")
    seen_files: set[Path] = set()
    while pending:
        item = pending.pop(0)
        path = Path(item).expanduser()
        path = path if path.is_absolute() else cwd / path
        if path.is_file():
            if path in seen_files:
                continue
            seen_files.add(path)
            pending = _read_names_file(path) + pending
        elif _GLOB.search(item):
            names += _pattern(item)
        elif _NAME.match(item):
            names.append(item)
        else:
            raise UserError(
                f"model.names item {item!r} is neither a timm model name, a pattern nor a "
                "file: use names like resnet50.a1_in1k"
            )
    return list(dict.fromkeys(names))


def warn_unknown(names: Sequence[str]) -> list[str]:
    """Names timm does not know: each gets a warning line (its job will be listed as failed
    in the leaderboard, the other jobs run)."""
    # timm (and torch) imported only when model names are given: every other command line
    # is prepared without them
    from imagenet_multilabel.models.backbones import check_model_name

    unknown = []
    for name in names:
        try:
            check_model_name(name)
        except ModelError as e:
            unknown.append(name)
            print(f"warning: {e}; its job will be listed as failed", file=sys.stderr)
    return unknown


def last_sweep(root: Path | None = None) -> Path:
    """The most recently started sweep under ``root`` (Hydra rewrites multirun.yaml at the
    start of every sweep, also of a resumed one)."""
    root = sweeps_root() if root is None else root
    found = sorted(root.glob("*/multirun.yaml"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(
            f"resume=last: no sweep under {root} (no */multirun.yaml): start the sweep "
            "without resume=, or pass resume=<sweep dir>"
        )
    return found[-1].parent


def resolve_resume(value: str, cwd: Path, task: str = "evaluate") -> Path:
    if value == "last":
        return last_sweep(cwd / sweeps_root(task))
    path = Path(value).expanduser()
    path = path if path.is_absolute() else cwd / path
    if not (path / "multirun.yaml").is_file():
        raise UserError(
            f"resume={value}: {path} is not a sweep folder (no multirun.yaml): pass the "
            "hydra.sweep.dir of an earlier sweep, or resume=last"
        )
    return path


def _take(argv: list[str], key: str) -> str | None:
    found = [a for a in argv if a.startswith(f"{key}=")]
    if len(found) > 1:
        raise UserError(f"{key}= is given {len(found)} times: pass it once")
    if not found:
        return None
    argv.remove(found[0])
    return found[0].split("=", 1)[1]


def prepare_argv(argv: Sequence[str], cwd: Path | None = None, task: str = "evaluate") -> list[str]:
    """``sys.argv`` with ``model.names=`` and ``resume=`` turned into Hydra overrides
    (``task``: evaluate or train, whose sweeps ``resume=last`` looks in)."""
    cwd = cwd or Path.cwd()
    args = list(argv[1:])
    multirun = any(a in MULTIRUN_FLAGS for a in args)
    extra: list[str] = []
    spec = _take(args, "model.names")
    if spec is not None:
        if any(a.startswith("model.name=") for a in args):
            raise UserError("pass either model.names=... or model.name=..., not both")
        names = resolve_model_names(spec, cwd)
        warn_unknown(names)
        bad = [n for n in names if not _NAME.match(n)]
        if bad:
            raise UserError(f"model name {bad[0]!r} cannot be passed to Hydra: rename it")
        if not any(a.startswith("model=") for a in args):
            extra.append("model=timm")
        extra.append("model.name=" + ",".join(names))
        print(f"model.names: {len(names)} models", file=sys.stderr)
        multirun = True
    resume = _take(args, "resume")
    if resume is not None:
        if any(a.startswith("hydra.sweep.dir=") for a in args):
            raise UserError("pass either resume=... or hydra.sweep.dir=..., not both")
        extra.append(f"hydra.sweep.dir={resolve_resume(resume, cwd, task)}")
        multirun = True
    flags = [] if any(a in MULTIRUN_FLAGS for a in args) or not multirun else ["-m"]
    return [argv[0], *flags, *args, *extra]


def prepare_argv_or_exit(argv: Sequence[str], task: str = "evaluate") -> list[str]:
    """:func:`prepare_argv`; a UserError ends the process with one line and exit code 2."""
    try:
        return prepare_argv(argv, task=task)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

"""python -m imagenet_multilabel propose runs=<sweep dir | run dir,run dir> [dataset=]
        [top_k=6] [min_prob=null] [max_candidates=8] [min_support=1] [out=] [image_root=]
        [exemplars=<folder of wnid-named photos>]
python -m imagenet_multilabel propose merge a.json b.json ... proposals=<folder> [min_agree=]
        [out=merged.json]
python -m imagenet_multilabel propose auto proposals=<folder> [min_prob=0.5] [out=auto.json]

Candidate labels for every image of a dataset the runs share, a static review page that
turns a person's decisions into a label file, reviewers merged into one set, or the set the
models alone imply (docs/propose.md).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.errors import UserError, one_line

LISTS = {"runs"}


def _value(text: str) -> Any:
    """``null`` -> None, whole numbers -> int, numbers -> float, else the text."""
    if text.lower() in ("null", "none", "~"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _runs(text: str) -> list[str]:
    """A run folder, or several joined by commas (sweep job folders have commas in their
    names: a value that is an existing folder is taken whole)."""
    if Path(text).expanduser().exists():
        return [text]
    return [p for p in text.split(",") if p]


def parse(argv: Sequence[str]) -> tuple[str, list[str], dict[str, Any]]:
    # imported here: --help and usage errors are answered without torch
    from imagenet_multilabel.propose.workflow import COMMANDS

    args = list(argv)
    command = args.pop(0) if args and args[0] in COMMANDS and args[0] != "propose" else "propose"
    positional: list[str] = []
    options: dict[str, Any] = {}
    for arg in args:
        key, sep, text = arg.partition("=")
        if not sep:
            positional.append(arg)
            continue
        key = key.lstrip("+")
        if key in LISTS:
            options.setdefault(key, []).extend(_runs(text))
        elif key in options:
            raise UserError(f"{key}= is given twice: give it once")
        else:
            paths = ("out", "image_root", "proposals", "exemplars")
            options[key] = text if key in paths else _value(text)
    return command, positional, options


def run(argv: Sequence[str]) -> Any:
    from imagenet_multilabel.propose.workflow import COMMANDS  # as in parse

    command, positional, options = parse(argv)
    func = COMMANDS[command]
    accepted = set(inspect.signature(func).parameters) - {"files", "rule"}
    if command == "propose":
        accepted |= {"top_k", "min_prob", "max_candidates", "min_support"}
        options.setdefault("runs", []).extend(positional)
        if not options["runs"]:
            raise UserError("no runs given: pass runs=<sweep dir> or runs=<run dir>,<run dir>")
    elif command == "merge":
        options["files"] = positional
    elif positional:
        raise UserError(f"auto takes no files ({positional[0]}): pass proposals=<folder>")
    unknown = sorted(set(options) - accepted - {"files", "runs"})
    if unknown:
        raise UserError(
            f"unknown option {unknown[0]}= for {command}: use {', '.join(sorted(accepted))}"
        )
    return func(**options)


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    try:
        run(argv)
    except UserError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

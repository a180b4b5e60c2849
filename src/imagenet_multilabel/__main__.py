"""``python -m imagenet_multilabel <command> [arguments]``: the package's commands besides
the root scripts ``evaluate.py`` and ``train.py`` (each lives in ``commands/<command>.py``)."""

from __future__ import annotations

import runpy
import sys

COMMANDS = {
    "score": "recompute the metrics of a finished run from its predictions (any labels, heads)",
    "stats": "label-count statistics of label sets",
    "gap": "how much of the accuracy gap of two evaluated datasets their label counts explain",
    "report": "gather runs or a sweep into a leaderboard and figures",
    "gallery": "one static page of a finished run's images",
    "propose": "candidate labels for an image folder, a review page, merged label files",
    "prepare": "get datasets onto disk",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()]
    return "usage: python -m imagenet_multilabel <command> [arguments]\n\ncommands:\n" + "\n".join(
        lines
    )


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(
            f"error: unknown command {command!r}: use one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    # run as ``python -m imagenet_multilabel.commands.<command>`` would: Hydra's commands
    # take their overrides from sys.argv[1:] and their job name from the module's file
    sys.argv = [f"python -m imagenet_multilabel {command}", *rest]
    runpy.run_module(f"imagenet_multilabel.commands.{command}", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])

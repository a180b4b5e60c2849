"""python -m imagenet_multilabel report <sweep dir | run dirs...> [--sort COL] [--out DIR]
    [--labels real tsipras labels.min_score=[0.5,0.8,0.95] labels.allow_missing=true]

Gathers finished, failed and incomplete runs into leaderboard.csv / .md / .json (and the
figures) — what a multirun of evaluate.py writes into its sweep folder at its end. With
``--labels``, the finished runs' saved predictions are also scored under each label set
named, as ``score`` does: sensitivity.json / .md / .png beside the leaderboard.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from imagenet_multilabel.core.errors import UserError, one_line
from imagenet_multilabel.reports.write import write_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m imagenet_multilabel report",
        description="Gather evaluation runs into a leaderboard (csv, md, json) and figures.",
    )
    p.add_argument("paths", nargs="+", help="a sweep folder, run folders, or folders above them")
    p.add_argument("--sort", help="column to sort by, e.g. imagenet/top1 (default: first top1)")
    p.add_argument(
        "--out", type=Path, help="where to write (default: the one folder given, else .)"
    )
    p.add_argument("--no-figures", action="store_true", help="write the tables only")
    p.add_argument(
        "--pair", nargs=2, metavar=("A", "B"), help="datasets the pair and gap figures compare"
    )
    p.add_argument(
        "--reference",
        help="dataset the testbed figures plot the others against (default: ImageNet val, "
        "else the first dataset)",
    )
    p.add_argument(
        "--labels",
        nargs="+",
        metavar="LABELS",
        help="score the finished runs under these label sets (names of conf/labels options "
        "and labels.<key>=<value> settings, e.g. real tsipras labels.min_score=[0.5,0.8,0.95] "
        "labels.allow_missing=true): sensitivity.json/.md/.png, as score writes them",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    out = args.out or (Path(args.paths[0]) if len(args.paths) == 1 else Path.cwd())
    if out.exists() and not out.is_dir():
        print(
            f"error: --out {out} is a file: pass a folder to write the leaderboard to",
            file=sys.stderr,
        )
        return 2
    try:
        board, written = write_report(
            args.paths,
            out,
            sort=args.sort,
            figures=not args.no_figures,
            pair=args.pair,
            reference=args.reference,
        )
        if args.labels:
            # torch and the scorer: only where asked (the leaderboard alone needs neither)
            from imagenet_multilabel.tasks.score import sweep_sensitivity

            done = [j.run for j in board.jobs if j.status == "done" and j.run.prediction_files]
            written += sweep_sensitivity(done, args.labels, out)
    except UserError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"error: cannot write the leaderboard into {out} ({e.strerror}): pass another "
            "folder with --out",
            file=sys.stderr,
        )
        return 2
    print(board.to_markdown())
    print(f"{board.summary()}: wrote {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The gain / forgetting trade-off of a fine-tuning sweep: one row per finished job of a
``train.py -m`` sweep folder, read through RunDir, and a scatter plot (gain on new
combinations of training photos vs change on never-trained classes).

    python benchmarks/finetune_tradeoff.py outputs/train/multirun/<time> [--plot out.png]
        [--metric vartopk_strict] [--seen train_recombined] [--unseen heldout_classes]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imagenet_multilabel.errors import DataError
from imagenet_multilabel.outputs import RunDir

SETTINGS = (
    ("loss", lambda i: i["loss"]["name"]),
    ("lr", lambda i: i["optimizer"]["lr"]),
    ("rows", lambda i: i["regularize"]["train_rows"]),
    ("l2", lambda i: i["regularize"]["l2_to_pretrained"]),
    ("keep", lambda i: i["loss"].get("keep_unseen", 0.0)),
    ("steps", lambda i: i["steps"]["global_step"]),
)
RAW = ("lr", "l2", "keep")  # printed as given


def rows(sweep: Path, metric: str, seen: str, unseen: str) -> list[dict]:
    out = []
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()):
        try:
            run = RunDir(job)
        except DataError:
            continue
        row = {"job": job.name, **{k: get(run.info) for k, get in SETTINGS}}
        for name, label in ((seen, "seen"), (unseen, "unseen")):
            m = run.metrics[name]
            row[f"{label}_pre"] = m[f"pretrained.{metric}"]
            row[f"{label}_ft"] = m[f"finetuned.{metric}"]
        single = run.metrics.get("single_photos", {})
        row["single_top1_pre"] = single.get("pretrained.top1", float("nan"))
        row["single_top1_ft"] = single.get("finetuned.top1", float("nan"))
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("sweep", type=Path)
    p.add_argument("--metric", default="vartopk_strict")
    p.add_argument("--seen", default="train_recombined")
    p.add_argument("--unseen", default="heldout_classes")
    p.add_argument("--plot", type=Path, default=None)
    args = p.parse_args(argv)
    table = rows(args.sweep, args.metric, args.seen, args.unseen)
    if not table:
        print(f"no finished job under {args.sweep}", file=sys.stderr)
        return 1
    cols = list(table[0])
    print(" | ".join(cols))
    for r in table:
        print(
            " | ".join(
                f"{r[c]:.1f}" if isinstance(r[c], float) and c not in RAW else str(r[c])
                for c in cols
            )
        )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4.5))
        for r in table:
            ax.scatter(r["unseen_ft"] - r["unseen_pre"], r["seen_ft"] - r["seen_pre"])
            ax.annotate(
                f"{r['loss']} lr {r['lr']:g} {r['rows']} l2 {r['l2']:g} keep {r['keep']:g}",
                (r["unseen_ft"] - r["unseen_pre"], r["seen_ft"] - r["seen_pre"]),
                fontsize=7,
            )
        ax.axvline(-1, color="grey", lw=0.8, ls="--")
        ax.set_xlabel(f"{args.unseen} {args.metric}: fine-tuned - pretrained")
        ax.set_ylabel(f"{args.seen} {args.metric}: fine-tuned - pretrained")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

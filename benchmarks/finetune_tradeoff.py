"""The gain / forgetting trade-off of fine-tuning sweeps: one row per finished run, read
through RunDir, as a Markdown table, and a scatter plot per split (change on never-trained
classes vs gain on new combinations of training photos; the dashed line is the 1-point
loss allowed on never-trained classes).

    python benchmarks/finetune_tradeoff.py [SPLIT=]FOLDER ... [--plot out.png]
        [--metric vartopk_strict] [--seen train_recombined] [--unseen heldout_classes]

A FOLDER is a ``train.py -m`` sweep folder (its numbered jobs) or one run folder; ``SPLIT=``
labels its rows (default: the folder's name), and folders with the same label share a panel;
a setting that several folders of a split repeat is listed once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.runs.rundir import RunDir

SETTINGS = (
    ("loss", lambda i: i["loss"]["name"]),
    ("lr", lambda i: i["optimizer"]["lr"]),
    ("rows", lambda i: i["regularize"]["train_rows"]),
    ("l2", lambda i: i["regularize"]["l2_to_pretrained"]),
    ("keep", lambda i: i["loss"].get("keep_unseen", 0.0)),
    ("steps", lambda i: i["steps"]["global_step"]),
    ("seed", lambda i: i.get("seed")),
)
RAW = ("lr", "l2", "keep")  # printed as given


def runs(folder: Path) -> list[Path]:
    """The run folders of a sweep folder (numbered jobs), or the folder itself."""
    if (folder / "run.json").is_file():
        return [folder]
    jobs = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(jobs, key=lambda p: int(p.name))


def rows(split: str, folder: Path, metric: str, seen: str, unseen: str) -> list[dict]:
    out = []
    for job in runs(folder):
        try:
            run = RunDir(job)
        except DataError:
            continue
        row = {"split": split, **{k: get(run.info) for k, get in SETTINGS}}
        for name, label in ((seen, "seen"), (unseen, "unseen")):
            m = run.metrics[name]
            row[f"{label}_pre"] = m[f"pretrained.{metric}"]
            row[f"{label}_ft"] = m[f"finetuned.{metric}"]
            row[f"{label}_delta"] = row[f"{label}_ft"] - row[f"{label}_pre"]
        single = run.metrics.get("single_photos", {})
        row["single_top1_pre"] = single.get("pretrained.top1", float("nan"))
        row["single_top1_ft"] = single.get("finetuned.top1", float("nan"))
        out.append(row)
    return out


def unique(table: list[dict]) -> list[dict]:
    """The first row of each split and settings (sweeps that repeat a setting)."""
    seen, out = set(), []
    for r in table:
        key = (r["split"], *(str(r[k]) for k, _ in SETTINGS))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def markdown(table: list[dict]) -> str:
    cols = list(table[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table:
        cells = (
            f"{r[c]:.1f}"
            if isinstance(r[c], float) and c not in RAW
            else f"{r[c]:g}"
            if isinstance(r[c], float)
            else str(r[c])
            for c in cols
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def label(r: dict) -> str:
    parts = [r["loss"], f"lr {r['lr']:g}", r["rows"]]
    if r["keep"]:
        parts.append(f"keep {r['keep']:g}")
    if r["l2"]:
        parts.append(f"l2 {r['l2']:g}")
    return " ".join(parts)


def plot(
    table: list[dict], path: Path, metric: str, seen: str, unseen: str, highlight: str = ""
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(dict.fromkeys(r["split"] for r in table))
    fig, axes = plt.subplots(1, len(splits), figsize=(6 * len(splits), 4.8), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        for r in (r for r in table if r["split"] == split):
            xy = (r["unseen_delta"], r["seen_delta"])
            ax.scatter(*xy, color="tab:green" if r["keep"] else "tab:blue", s=18)
            if label(r) == highlight:
                ax.scatter(*xy, marker="*", color="tab:red", s=160, zorder=3, label=highlight)
            ax.annotate(label(r), xy, fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.axvline(-1, color="grey", lw=0.8, ls="--")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(split)
        if highlight:
            ax.legend(loc="lower left", fontsize=8)
        ax.set_xlabel(f"{unseen} {metric}: fine-tuned - pretrained")
        ax.set_ylabel(f"{seen} {metric}: fine-tuned - pretrained")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("folders", nargs="+", help="[SPLIT=]FOLDER")
    p.add_argument("--metric", default="vartopk_strict")
    p.add_argument("--seen", default="train_recombined")
    p.add_argument("--unseen", default="heldout_classes")
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--highlight", default="", help='a setting to mark, e.g. "bce lr 0.001 all"')
    args = p.parse_args(argv)
    table = []
    for spec in args.folders:
        split, _, folder = spec.rpartition("=")
        folder = Path(folder)
        table += rows(split or folder.name, folder, args.metric, args.seen, args.unseen)
    table = unique(table)
    if not table:
        print(f"no finished run under {', '.join(args.folders)}", file=sys.stderr)
        return 1
    print(markdown(table))
    if args.plot:
        plot(table, args.plot, args.metric, args.seen, args.unseen, args.highlight)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Recall of label proposals against candidates per image, on a truth we have.

Two-photo composites of the 1000-photo ImageNet sample (the truth: their tiles' labels),
evaluated (a) by tf_efficientnet_lite0 at several input sizes, with and without a
horizontal flip (eight views of one network), and (b) by the three networks with real
weights offline, tf_efficientnet_lite0, lite1 and lite2, each at its own preprocessing.
For a few rules (top-k per model, probability >= p, both) it prints and writes a table of
recall and mean candidates per image, for one model, the eight views and the three
networks, and plots recall against candidates per image.

    PYTHONPATH=src python benchmarks/propose_recall.py [--runs SWEEP_DIR]
        [--networks-runs SWEEP_DIR] [--num-images 200]

Without ``--runs`` / ``--networks-runs`` it first runs the sweeps (8 and 3 evaluations):

    python evaluate.py -m preprocess.img_size=224,256,288,320 preprocess.hflip=false,true \\
      data=patchml data.base.root=<sample> data.num_images=200 hydra.sweep.dir=<dir>
    python evaluate.py -m model=tf_efficientnet_lite0,tf_efficientnet_lite1,\\
      tf_efficientnet_lite2 data=patchml data.base.root=<sample> data.num_images=200 ...

Writes ``docs/propose_recall.md`` and ``docs/figures/propose_recall.png`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from common import REPO, SAMPLE, fail

from imagenet_multilabel.propose.candidates import (
    Rule,
    candidate_matrix,
    load_ensemble,
    recall,
)

SIZES = (224, 256, 288, 320)
RULES = (
    [Rule(top_k=k, min_prob=None, max_candidates=1000) for k in (1, 2, 3, 5, 6, 10)]
    + [Rule(top_k=0, min_prob=p, max_candidates=1000) for p in (0.2, 0.1, 0.05, 0.02, 0.01)]
    + [Rule(top_k=k, min_prob=None, max_candidates=8) for k in (3, 5, 6, 8, 10)]
    + [Rule(top_k=k, min_prob=0.05, max_candidates=8) for k in (3, 5, 6)]
    + [Rule(top_k=6, min_prob=None, max_candidates=m) for m in (4, 6)]
)


VIEWS = (f"preprocess.img_size={','.join(map(str, SIZES))}", "preprocess.hflip=false,true")
NETWORKS = ("model=tf_efficientnet_lite0,tf_efficientnet_lite1,tf_efficientnet_lite2",)


def run_sweep(out: Path, num_images: int, sweep: tuple[str, ...] = VIEWS) -> None:
    cmd = [
        sys.executable,
        str(REPO / "evaluate.py"),
        "-m",
        *sweep,
        "data=patchml",
        f"data.base.root={SAMPLE}",
        f"data.num_images={num_images}",
        f"hydra.sweep.dir={out}",
        "logger=none",
    ]
    print(" ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}  # this checkout's package
    subprocess.run(cmd, check=True, cwd=REPO, env=env)


def describe(rule: Rule) -> str:
    parts = []
    if rule.top_k:
        parts.append(f"top-{rule.top_k}")
    if rule.min_prob is not None:
        parts.append(f"p>={rule.min_prob:g}")
    text = " or ".join(parts)
    if rule.max_candidates < 1000:
        text += f", max {rule.max_candidates}"
    return text


def family(rule: Rule) -> str:
    if rule.max_candidates == 1000:
        return "top-k" if rule.top_k else "p>=t"
    if rule.max_candidates == 8:
        return "top-k or p>=0.05, max 8" if rule.min_prob else "top-k, max 8"
    return "top-6, max m"


def measure(probs: np.ndarray, target: np.ndarray, truth: np.ndarray) -> list[dict]:
    rows = []
    for rule in RULES:
        chosen, _, _ = candidate_matrix(probs, target, rule)
        r, n = recall(chosen, truth)
        alone, _, _ = candidate_matrix(probs, None, rule)
        r_alone, n_alone = recall(alone, truth)
        # the label the original does not give: the other tile's
        other = truth.copy()
        other[np.arange(len(target)), target] = False
        r_other, _ = recall(chosen, other)
        rows.append(
            {
                "rule": describe(rule),
                "family": family(rule),
                "candidates": n,
                "recall": r,
                "recall_other": r_other,
                "candidates_models": n_alone,
                "recall_models": r_alone,
            }
        )
    return rows


def table(
    results: dict[str, list[dict]], num_images: int, ensembles: dict[str, list[str]], photos: str
) -> str:
    lines = [
        "# Label proposals: recall against candidates per image",
        "",
        f"{num_images} two-photo composites of the photos of `{photos}` (truth: the two "
        "tiles' labels); written by `benchmarks/propose_recall.py`. *Candidates* and *recall*: "
        "as the review page shows them (the original label, i.e. the first tile's, always "
        "included); *other tile*: recall of the label the original does not give; *models "
        "only*: the same rule without adding the original label.",
        "",
        *(f"{who}: {', '.join(models)}." for who, models in ensembles.items()),
        "",
        "| models | rule | candidates / image | recall | other tile | models only: "
        "candidates | models only: recall |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for who, rows in results.items():
        for r in rows:
            lines.append(
                f"| {who} | {r['rule']} | {r['candidates']:.2f} | {100 * r['recall']:.1f}% | "
                f"{100 * r['recall_other']:.1f}% | {r['candidates_models']:.2f} | "
                f"{100 * r['recall_models']:.1f}% |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, title in (
        (axes[0], "", "original label + proposals (the review page)"),
        (axes[1], "_models", "proposals alone"),
    ):
        for (who, rows), style in zip(results.items(), ("--", "-", ":"), strict=False):
            for fam, marker in (("top-k", "o"), ("p>=t", "s"), ("top-k, max 8", "^")):
                pts = sorted(
                    (r[f"candidates{key}"], r[f"recall{key}"]) for r in rows if r["family"] == fam
                )
                ax.plot(
                    [p[0] for p in pts],
                    [100 * p[1] for p in pts],
                    style,
                    marker=marker,
                    label=f"{who}: {fam}",
                )
        ax.axhline(98, color="grey", lw=0.8)
        ax.axvline(8, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(60, 100.5)
        ax.set_xlabel("mean candidates per image")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall of the true labels (%)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(
        "two-photo composites: tf_efficientnet_lite0 (dashed), its 4 sizes x hflip (solid), "
        "lite0 + lite1 + lite2 (dotted)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--runs", type=Path, nargs="+", help="the finished runs of the views (else a sweep)"
    )
    parser.add_argument(
        "--networks-runs", type=Path, nargs="+", help="the finished runs of the networks"
    )
    parser.add_argument("--num-images", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--single", default="224", help="input size of the one model")
    args = parser.parse_args()
    if (args.runs is None or args.networks_runs is None) and not SAMPLE.is_dir():
        fail(f"{SAMPLE} does not exist: set IMAGENET_ML_SAMPLE to the 1000-photo sample")
    if args.runs is None:
        args.runs = [REPO / "outputs" / "propose_recall"]
        run_sweep(args.runs[0], args.num_images)
    if args.networks_runs is None:
        args.networks_runs = [REPO / "outputs" / "propose_recall_networks"]
        run_sweep(args.networks_runs[0], args.num_images, NETWORKS)
    ens = load_ensemble(args.runs)
    nets = load_ensemble(args.networks_runs)
    if not (np.array_equal(nets.paths, ens.paths) and np.array_equal(nets.target, ens.target)):
        fail(f"{args.runs} and {args.networks_runs} hold other composites: use one --num-images")
    if ens.valid is None:
        fail(f"{args.runs}: the runs hold no label set (evaluate composites: data=patchml)")
    truth = ens.valid
    single = [i for i, m in enumerate(ens.models) if m.endswith(f"@{args.single}")]
    if not single:
        fail(f"no run at input size {args.single} in {args.runs}: {', '.join(ens.models)}")
    results = {
        f"one model ({ens.models[single[0]]})": measure(ens.probs[single[:1]], ens.target, truth),
        f"{len(ens.models)} views of one": measure(ens.probs, ens.target, truth),
        f"{len(nets.models)} networks": measure(nets.probs, nets.target, truth),
    }
    ensembles = {
        f"{len(ens.models)} views of one": list(ens.models),
        f"{len(nets.models)} networks": list(nets.models),
    }
    text = table(results, len(ens.target), ensembles, Path(ens.root or "?").name)
    print(text)
    (args.out / "propose_recall.md").write_text(text)
    plot(results, args.out / "figures" / "propose_recall.png")
    print(f"wrote {args.out / 'propose_recall.md'} and {args.out / 'figures/propose_recall.png'}")


if __name__ == "__main__":
    main()

"""Time every metric on 50,000 x 1000 cached predictions (the size of ImageNet val).

Synthetic but shaped like a real run, seeded: ~6% of images have no valid label, the
others 1 (82%), 2 (12%), 3 (4%) or 4-8 (2%) labels (~1.24 per labeled image); logits of
a model with ~80% top-1: Gaussian noise, a boost for the valid labels and for a few
confusable classes. Prints the time of each metric group and the total next to the 1 s
target.

    PYTHONPATH=src python benchmarks/bench_metrics.py [--n 50000] [--c 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from imagenet_multilabel.metrics import functional as F

TARGET_S = 1.0


def make_data(n: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    sizes = rng.choice(
        [0, 1, 2, 3, 4, 5, 6, 8], size=n, p=[0.06, 0.77, 0.11, 0.04, 0.01, 0.005, 0.003, 0.002]
    )
    valid = np.zeros((n, c), dtype=bool)
    target = rng.integers(0, c, n)
    logits = rng.standard_normal((n, c), dtype=np.float32)
    for size in np.unique(sizes[sizes > 0]):
        rows = np.flatnonzero(sizes == size)
        labels = np.argsort(rng.random((len(rows), c)), axis=1)[:, :size]
        valid[rows[:, None], labels] = True
        target[rows] = labels[:, 0]
        boost = rng.normal(9.0, 3.0, size=(len(rows), size)).astype(np.float32)
        logits[rows[:, None], labels] += boost
    confusers = rng.integers(0, c, (n, 3))
    logits[np.arange(n)[:, None], confusers] += rng.normal(5.0, 2.0, (n, 3)).astype(np.float32)
    return torch.from_numpy(logits), torch.from_numpy(target), torch.from_numpy(valid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--c", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logits, target, valid = make_data(args.n, args.c, args.seed)
    print(
        f"{args.n} x {args.c} logits, {int(valid.any(1).sum())} labeled, "
        f"{valid.sum().item() / max(1, int(valid.any(1).sum())):.3f} labels per labeled image, "
        f"torch threads {torch.get_num_threads()}"
    )

    times: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        result = fn()
        times[name] = time.perf_counter() - t0
        return result

    single = timed(
        "single-label head (top1/top5/nll/ece)", lambda: F.single_label_metrics(logits, target)
    )
    ranking = timed(
        "ranking (top-k, ReaL, vartopk, subgroups)", lambda: F.Ranking(logits, valid, 5)
    )
    scores = timed("softmax row statistics", lambda: F.ClassScores(logits, "softmax"))
    lab = ranking.labeled
    index = lab.nonzero().squeeze(1)
    timed("average precision (macro + micro)", lambda: scores.average_precision(index, valid))
    timed(
        "predicted sets vartopk + f1/precision/recall/...",
        lambda: F.set_metrics(
            *F.predicted_set_counts(ranking, scores, valid, "vartopk"), ranking.n_valid[lab], args.c
        ),
    )
    timed(
        "uncertainty view (confident errors, ece_multilabel)",
        lambda: F.expected_calibration_error(scores.top1()[lab], ranking.hits[lab, 0]),
    )
    total = sum(times.values())
    width = max(map(len, times))
    for name, t in times.items():
        print(f"  {name:<{width}}  {t:7.3f} s")
    print(
        f"  {'total':<{width}}  {total:7.3f} s   (target {TARGET_S:.1f} s: "
        f"{'met' if total <= TARGET_S else 'NOT met'})"
    )
    t0 = time.perf_counter()
    full = F.multilabel_metrics(logits, target, valid)
    t_ml = time.perf_counter() - t0
    print(
        f"  multilabel_metrics() end to end (vartopk head): {t_ml:.3f} s; "
        f"single + multi-label heads: {t_ml + times['single-label head (top1/top5/nll/ece)']:.3f} s"
    )
    for mode in ("topk", "threshold", "cumulative"):
        t0 = time.perf_counter()
        F.set_metrics(
            *F.predicted_set_counts(ranking, scores, valid, mode, k=1, threshold=0.5, mass=0.9),
            ranking.n_valid[lab],
            args.c,
        )
        print(f"  predicted sets mode={mode}: {time.perf_counter() - t0:.3f} s")
    print(
        "  "
        + ", ".join(
            f"{k}={v:.2f}"
            for k, v in {**single, **full}.items()
            if k in ("top1", "real_top1", "vartopk_strict", "asma", "map_macro", "map_micro")
        )
    )


if __name__ == "__main__":
    main()

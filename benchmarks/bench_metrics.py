"""Time every metric on 50,000 x 1000 cached predictions (the size of ImageNet val).

Synthetic but shaped like a real run, seeded: ~6% of images have no valid label, the
others 1 (82%), 2 (12%), 3 (4%) or 4-8 (2%) labels (~1.24 per labeled image); logits of
a model with ~80% top-1: Gaussian noise, a boost for the valid labels and for a few
confusable classes.

Prints, as the median of ``--repeat`` runs, the time of each metric group, of each head
and of both heads together as the evaluation runs them (``Scorer.score``: one shared
``RowSummary`` per dataset), next to the 1 s target; then the public metric side by side
with them: ``MultiLabelCapability.compute()`` after ``--updates`` updates, without and with
``dataset_size`` (then the updates write into preallocated states and compute() joins
nothing), the functional ``multilabel_capability`` on the same tensors and the
evaluation's own scoring (and the join before it: ``PredictionBuffer.compute()`` after
``--updates`` updates of the dataset's size) (target: compute() within 1.2x of the
functional form, in wall and CPU time). Wall-clock and process CPU time are both shown:
on a shared machine the wall clock also counts time spent waiting for a core.

    PYTHONPATH=src python benchmarks/bench_metrics.py [--n 50000] [--c 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

import numpy as np
import torch

from imagenet_multilabel.scoring.capability import MultiLabelCapability, multilabel_capability
from imagenet_multilabel.scoring.heads import MultiLabelHead, SingleLabelHead
from imagenet_multilabel.scoring.metrics.average_precision import scores_average_precision
from imagenet_multilabel.scoring.metrics.buffer import PredictionBuffer
from imagenet_multilabel.scoring.metrics.multilabel import (
    multilabel_ranks,
    predicted_set_counts,
    set_metrics,
)
from imagenet_multilabel.scoring.metrics.ranking import Ranking, RowSummary
from imagenet_multilabel.scoring.metrics.scores import ClassScores
from imagenet_multilabel.scoring.metrics.single import (
    expected_calibration_error,
    single_label_metrics,
)
from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer

TARGET_S = 1.0
TARGET_RATIO = 1.2  # compute() against the functional form


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


class Clock:
    """Wall-clock and process CPU seconds of named steps, over several runs."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)

    def __call__(self, name, fn):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        self.wall[name].append(time.perf_counter() - w)
        self.cpu[name].append(time.process_time() - c)
        return result

    def row(self, name: str, width: int) -> str:
        wall, cpu = statistics.median(self.wall[name]), statistics.median(self.cpu[name])
        return f"  {name:<{width}}  {wall:7.3f} s  {cpu:7.3f} s"


def run_groups(clock: Clock, logits, target, valid, n_classes: int) -> None:
    """The metric groups one by one, as the heads compute them from one RowSummary."""
    k = multilabel_ranks(valid)
    p = clock(
        "shared: top-k ranking + softmax statistics (one pass)", lambda: RowSummary(logits, k)
    )
    clock(
        "single-label head (top1/top5/nll/ece)",
        lambda: single_label_metrics(logits, target, summary=p),
    )
    ranking = clock(
        "ranking metrics (ReaL, vartopk, subgroups)", lambda: Ranking(logits, valid, 5, p)
    )
    scores = ClassScores(logits, "softmax", summary=p)
    lab = ranking.labeled
    index = lab.nonzero().squeeze(1)
    clock(
        "average precision (macro + micro)",
        lambda: scores_average_precision(scores, index, valid),
    )
    clock(
        "predicted sets vartopk + f1/precision/recall/...",
        lambda: set_metrics(
            *predicted_set_counts(ranking, scores, valid, "vartopk"),
            ranking.n_valid[lab],
            n_classes,
        ),
    )
    clock(
        "uncertainty view (confident errors, ece_multilabel)",
        lambda: expected_calibration_error(scores.top1()[lab], ranking.hits[lab, 0]),
    )


PLAIN = ("metric: update (all calls)", "MultiLabelCapability.compute()")
SIZED = ("metric(dataset_size=n): update (all calls)", "metric(dataset_size=n).compute()")
FUNCTIONAL = "multilabel_capability(logits, target, valid)"
GATHER = "the evaluation's join: PredictionBuffer(n).compute()"


def time_set_modes(logits: torch.Tensor, valid: torch.Tensor, c: int) -> None:
    """``--modes``: the time of the predicted sets' metrics in each set mode."""
    p = RowSummary(logits, multilabel_ranks(valid))
    ranking = Ranking(logits, valid, 5, p)
    scores = ClassScores(logits, "softmax", summary=p)
    lab = ranking.labeled
    for mode in ("topk", "threshold", "cumulative"):
        t0 = time.perf_counter()
        set_metrics(
            *predicted_set_counts(ranking, scores, valid, mode, k=1, threshold=0.5, mass=0.9),
            ranking.n_valid[lab],
            c,
        )
        print(f"  predicted sets mode={mode}: {time.perf_counter() - t0:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--c", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--updates", type=int, default=100, help="the metric's update calls")
    parser.add_argument("--modes", action="store_true", help="also time the other set modes")
    args = parser.parse_args()
    logits, target, valid = make_data(args.n, args.c, args.seed)
    print(
        f"{args.n} x {args.c} logits, {int(valid.any(1).sum())} labeled, "
        f"{valid.sum().item() / max(1, int(valid.any(1).sum())):.3f} labels per labeled image, "
        f"torch threads {torch.get_num_threads()}; median of {args.repeat} runs"
    )
    heads = {"single": SingleLabelHead(), "multilabel": MultiLabelHead()}
    clock = Clock()
    both_name = "both heads: Scorer.score(single + multilabel)"
    for _ in range(args.repeat):
        run_groups(clock, logits, target, valid, args.c)
        scorer = Scorer({n: HeadSpec(h) for n, h in heads.items()})
        out = clock(both_name, lambda s=scorer: s.score("bench", logits, target, valid))
        clock("single head alone", lambda: SingleLabelHead().metrics(logits, target, None))
        clock("multilabel head alone", lambda: MultiLabelHead().metrics(logits, target, valid))
        results, chunks = [], torch.arange(args.n).chunk(args.updates)
        for size, (update, compute) in ((None, PLAIN), (args.n, SIZED)):
            metric = MultiLabelCapability(num_classes=args.c, dataset_size=size)
            # the batches as a model gives them: tensors of their own
            batches = [(logits[r], target[r], valid[r]) for r in chunks]
            clock(update, lambda m=metric, b=batches: [m.update(*batch) for batch in b])
            del batches
            results.append(clock(compute, metric.compute))
            del metric
        functional = clock(FUNCTIONAL, lambda: multilabel_capability(logits, target, valid))
        buffer = PredictionBuffer(args.n, with_valid=True, num_classes=args.c)
        for r in chunks:
            buffer.update(r, logits[r], target[r], valid[r])
        joined = clock(GATHER, buffer.compute)
        assert torch.equal(joined.logits, logits) and torch.equal(joined.valid, valid)
        del buffer, joined
        for from_metric in results:
            assert json.dumps(from_metric) == json.dumps(functional)  # the same numbers

    public = (*PLAIN, *SIZED, FUNCTIONAL, GATHER)
    width = max(map(len, clock.wall))
    print(f"  {'':<{width}}     wall       cpu")
    for name in list(clock.wall):
        if name == both_name or name in public:
            continue
        print(clock.row(name, width))
    groups = [
        n
        for n in clock.wall
        if n not in (both_name, "single head alone", "multilabel head alone", *public)
    ]
    total = sum(statistics.median(clock.wall[n]) for n in groups)
    print(f"  {'sum of the groups':<{width}}  {total:7.3f} s")
    both = statistics.median(clock.wall[both_name])
    print(
        clock.row(both_name, width)
        + f"   target {TARGET_S:.1f} s: {'met' if both <= TARGET_S else 'NOT met'}"
    )
    print("  runs of both heads (wall): " + ", ".join(f"{t:.3f}" for t in clock.wall[both_name]))
    print(f"the public metric, {args.updates} updates (same data, same numbers):")
    for name in (*public, both_name):
        print(clock.row(name, width))
    for label, (_, compute) in (("", PLAIN), (" (dataset_size=n)", SIZED)):
        ratios = [
            statistics.median(times[compute]) / statistics.median(times[FUNCTIONAL])
            for times in (clock.wall, clock.cpu)
        ]
        verdict = "met" if max(ratios) <= TARGET_RATIO else "NOT met"
        print(
            f"  compute(){label} / functional: {ratios[0]:.2f}x wall, {ratios[1]:.2f}x cpu"
            f"   target {TARGET_RATIO}x: {verdict}"
        )
    if args.modes:
        time_set_modes(logits, valid, args.c)
    print(
        "  "
        + ", ".join(
            f"{k}={v:.2f}"
            for k, v in out.items()
            if k in ("top1", "real_top1", "vartopk_strict", "asma", "map_macro", "map_micro")
        )
    )


if __name__ == "__main__":
    main()

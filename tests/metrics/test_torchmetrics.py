"""The torchmetrics classes: batched updates on one process, and a real 2-process gloo
pool with uneven shards, must give exactly the functional core's numbers."""

from __future__ import annotations

import math
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from imagenet_multilabel.metrics import functional as F
from imagenet_multilabel.metrics.classification import (
    ASMA,
    RealAccuracy,
    SubgroupAccuracy,
    VariableTopK,
)
from imagenet_multilabel.metrics.multilabel import MultilabelMAP, MultilabelSetMetrics

N, C = 57, 11


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    logits = torch.randint(-3, 4, (N, C), generator=g).float()  # ties included
    logits[::4] = torch.randn(len(logits[::4]), C, generator=g)
    target = torch.randint(0, C, (N,), generator=g)
    sizes = torch.randint(0, 8, (N,), generator=g)  # 0..7 labels, some empty
    valid = torch.zeros(N, C, dtype=torch.bool)
    for i, k in enumerate(sizes.tolist()):
        valid[i, torch.randperm(C, generator=g)[:k]] = True
    return logits, target, valid


def make_metrics() -> dict[str, object]:
    return {
        "real_top1": RealAccuracy(1),
        "real_top5": RealAccuracy(5),
        "vartopk_strict": VariableTopK(C, strict=True),
        "vartopk_partial": VariableTopK(C, strict=False),
        "subgroups": SubgroupAccuracy(),
        "asma": ASMA(min_subgroup_size=2),
        "map": MultilabelMAP(),
        "sets_vartopk": MultilabelSetMetrics("vartopk"),
        "sets_cumulative": MultilabelSetMetrics("cumulative", mass=0.7),
        "sets_threshold": MultilabelSetMetrics("threshold", scores="sigmoid", threshold=0.6),
    }


def run(rows: torch.Tensor, batch: int) -> dict[str, float]:
    """Update every metric with ``rows`` in batches and compute (synced if distributed)."""
    logits, target, valid = data()
    metrics = make_metrics()
    for a in range(0, len(rows), batch):
        idx = rows[a : a + batch]
        for name, m in metrics.items():
            if name in ("subgroups", "asma"):
                m.update(logits[idx], target[idx], valid[idx])
            else:
                m.update(logits[idx], valid[idx])
    out: dict[str, float] = {}
    for name, m in metrics.items():
        value = m.compute()
        if isinstance(value, dict):
            out.update({f"{name}/{k}": float(v) for k, v in value.items()})
        else:
            out[name] = float(value)
    return out


def expected() -> dict[str, float]:
    logits, target, valid = data()
    ref = F.multilabel_metrics(logits, target, valid, min_subgroup_size=2)
    cum = F.multilabel_metrics(logits, target, valid, mode="cumulative", mass=0.7)
    thr = F.multilabel_metrics(
        logits, target, valid, mode="threshold", scores="sigmoid", threshold=0.6
    )
    out = {k: ref[k] for k in ("real_top1", "real_top5", "vartopk_strict", "vartopk_partial")}
    out["asma"] = ref["asma"]
    for g in F.LABEL_GROUPS:
        for key in ("num_images", "top1", "real_top1", "vartopk_strict"):
            out[f"subgroups/{key}@labels={g}"] = ref[f"{key}@labels={g}"]
    out["map/map_macro"], out["map/map_micro"] = ref["map_macro"], ref["map_micro"]
    for prefix, src in (("sets_vartopk", ref), ("sets_cumulative", cum), ("sets_threshold", thr)):
        for key in ("precision", "recall", "f1", "subset_accuracy", "hamming_loss"):
            out[f"{prefix}/{key}"] = src[key]
    return out


def same(a: float, b: float, rel: float = 0.0) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=rel)


@pytest.mark.parametrize("batch", [1, 8, N])
def test_single_process_matches_functional(batch):
    got = run(torch.arange(N), batch)
    want = expected()
    assert set(got) == set(want)
    # sum-state metrics are exact; vartopk_partial and the mAPs sum floats in another order
    bad = {k: (got[k], want[k]) for k in want if not same(got[k], want[k], 1e-12)}
    assert not bad


def _worker(rank: int, port: int, queue) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        rows = torch.arange(N)
        shard = rows[:20] if rank == 0 else rows[20:]  # uneven: 20 and 37 images
        out = run(shard, 6 if rank == 0 else 9)
        if rank == 0:
            queue.put(out)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.ddp
def test_two_processes_equal_one_exactly():
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(
        _worker, args=(free_port(), queue), nprocs=2, join=True, start_method="spawn"
    )
    got = queue.get()
    want = run(torch.arange(N), N)
    assert set(got) == set(want)
    bad = {k: (got[k], want[k]) for k in want if not same(got[k], want[k])}
    assert not bad

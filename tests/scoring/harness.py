"""The project's test harness for a torchmetrics ``Metric``: every public metric goes through
it (tests/scoring/test_harness.py), and so, once, do a metric known to be right
(torchmetrics' ``MultilabelAveragePrecision``) and metrics broken on purpose, to show that
the harness tells them apart.

A :class:`Case` says how to make the metric, how to draw a random dataset, how to update
with some of its rows, the functional form on the whole dataset (the reference), which
inputs ``update`` must refuse and how to make ``compute()`` fail under DDP. Each check of
:data:`CHECKS` takes a case and a seeded generator and raises ``AssertionError`` (or any
error) when the metric misbehaves; :func:`run_checks` turns that into a table row. The
distributed checks run in one spawn of ``world`` gloo processes that runs every case
(:func:`run_distributed`).

Written for this project (in the spirit of torchmetrics' tester, no code of it).
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MultilabelAveragePrecision
from torchmetrics.functional.classification import multilabel_average_precision
from torchmetrics.utilities.distributed import gather_all_tensors

from imagenet_multilabel.scoring import MultiLabelCapability, multilabel_capability

Data = dict[str, Tensor]
CLASSES = 10


@dataclass
class Case:
    """A metric as the harness drives it."""

    name: str
    make: Callable[[Data], Metric]  # a new metric for a dataset (some need its size)
    draw: Callable[[torch.Generator, int], Data]  # a random dataset of n rows
    args: Callable[[Data, Tensor], tuple]  # update's arguments for these rows (positions)
    reference: Callable[[Data], Any]  # the functional form on the whole dataset
    ordered: bool = False  # updates must come in dataset order (no index)
    bad: dict[str, Callable[[Data], tuple]] = field(default_factory=dict)  # update refuses
    fail: Callable[[Metric, Data, Tensor], None] | None = None  # DDP: a compute() that raises
    empty_shards: bool = True  # under DDP, a rank may have no image (torchmetrics: no)
    atol: float = 0.0  # results of other float sums (a gather's order)
    low_precision_atol: float = 0.0  # after set_dtype(float16) / .to(float16)


# -- comparing results -----------------------------------------------------------------------


def assert_same(got: Any, want: Any, atol: float = 0.0) -> None:
    """Equal results: dicts key by key in order, tensors and numbers within ``atol`` (0: to
    the last bit), NaN equal to NaN."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), "other keys"
        for k in want:
            assert_same(got[k], want[k], atol)
        return
    g = torch.as_tensor(got, dtype=torch.float64)
    w = torch.as_tensor(want, dtype=torch.float64)
    assert g.shape == w.shape, f"shape {tuple(g.shape)} != {tuple(w.shape)}"
    both_nan = g.isnan() & w.isnan()
    close = (g - w).abs() <= atol
    assert bool((both_nan | close).all()), f"{got} != {want}"


# -- driving a metric ------------------------------------------------------------------------


def batches(case: Case, g: torch.Generator, n: int, one_batch: bool = False) -> list[Tensor]:
    """The dataset's positions in random batches of random sizes (1 included), in random
    order unless the case needs dataset order."""
    order = torch.arange(n) if case.ordered else torch.randperm(n, generator=g)
    if one_batch:
        return [order]
    cuts, start = [], 0
    while start < n:
        size = int(torch.randint(1, max(2, n // 2), (1,), generator=g))
        cuts.append(order[start : start + size])
        start += size
    return cuts


def fed(case: Case, data: Data, parts: list[Tensor], metric: Metric | None = None) -> Metric:
    metric = case.make(data) if metric is None else metric
    for rows in parts:
        metric.update(*case.args(data, rows))
    return metric


def dataset(case: Case, g: torch.Generator, low: int = 2, high: int = 40) -> Data:
    return case.draw(g, int(torch.randint(low, high + 1, (1,), generator=g)))


# -- the checks (one process) ----------------------------------------------------------------


def check_splits(case: Case, g: torch.Generator) -> None:
    """class = functional, whatever the batch splits, order and sizes (and in one batch)."""
    for trial in range(6):
        data = dataset(case, g, 1 if trial == 0 else 2)
        n = len(next(iter(data.values())))
        metric = fed(case, data, batches(case, g, n, one_batch=trial == 1))
        assert_same(metric.compute(), case.reference(data))


def check_pickle(case: Case, g: torch.Generator) -> None:
    """pickle, deepcopy and clone of an updated metric compute the same."""
    data = dataset(case, g)
    metric = fed(case, data, batches(case, g, _n(data)))
    want = case.reference(data)
    for copied in (pickle.loads(pickle.dumps(metric)), copy.deepcopy(metric), metric.clone()):
        assert_same(copied.compute(), want)


def check_state_dict(case: Case, g: torch.Generator) -> None:
    """state_dict -> a new metric's load_state_dict (states made persistent), then more
    updates: the whole dataset's numbers."""
    data = dataset(case, g, 4)
    parts = batches(case, g, _n(data))
    half = max(1, len(parts) // 2)
    first = fed(case, data, parts[:half])
    first.persistent(True)
    second = case.make(data)
    second.persistent(True)
    second.load_state_dict(first.state_dict())
    assert_same(fed(case, data, parts[half:], second).compute(), case.reference(data))


def check_reset(case: Case, g: torch.Generator) -> None:
    """reset() after updates and a compute(): as new."""
    data = dataset(case, g)
    other = case.draw(g, _n(data))
    metric = fed(case, other, batches(case, g, _n(other)))
    metric.compute()
    metric.reset()
    assert_same(fed(case, data, batches(case, g, _n(data)), metric).compute(), case.reference(data))


def check_forward(case: Case, g: torch.Generator) -> None:
    """Calling the metric (forward) accumulates as update does."""
    data = dataset(case, g)
    metric = case.make(data)
    for rows in batches(case, g, _n(data)):
        metric(*case.args(data, rows))
    assert_same(metric.compute(), case.reference(data))


def check_merge(case: Case, g: torch.Generator) -> None:
    """merge_state of a metric updated with the rest of the dataset."""
    data = dataset(case, g, 4)
    parts = batches(case, g, _n(data))
    half = max(1, len(parts) // 2)
    first, second = fed(case, data, parts[:half]), fed(case, data, parts[half:])
    first.merge_state(second)
    assert_same(first.compute(), case.reference(data))


def check_dtypes(case: Case, g: torch.Generator) -> None:
    """After updates: .half(), .float(), .double() (module moves, which torchmetrics keeps
    off the states) change nothing; set_dtype(float16) and .to(float16) / .to(float64)
    compute within the case's low-precision tolerance (0: keeps its states' dtypes)."""
    data = dataset(case, g)
    want = case.reference(data)
    for move, atol in (
        (lambda m: m.half(), 0.0),
        (lambda m: m.double(), 0.0),
        (lambda m: m.float(), 0.0),
        (lambda m: m.set_dtype(torch.float16), case.low_precision_atol),
        (lambda m: m.to(torch.float16), case.low_precision_atol),
        (lambda m: m.to(torch.float64), case.low_precision_atol),
    ):
        metric = fed(case, data, batches(case, g, _n(data)))
        assert_same(move(metric).compute(), want, atol)


def check_twice(case: Case, g: torch.Generator) -> None:
    """compute() twice gives the same."""
    data = dataset(case, g)
    metric = fed(case, data, batches(case, g, _n(data)))
    first = copy.deepcopy(metric.compute())
    assert_same(metric.compute(), first)
    assert_same(first, case.reference(data))


def check_fresh(case: Case, g: torch.Generator) -> None:
    """A caller's edit of compute()'s result does not reach the next compute()."""
    data = dataset(case, g)
    metric = fed(case, data, batches(case, g, _n(data)))
    result = metric.compute()
    if isinstance(result, dict):
        result.clear()
    else:
        result.add_(1.0)
    assert_same(metric.compute(), case.reference(data))


def check_bad_inputs(case: Case, g: torch.Generator) -> None:
    """update() refuses every bad input of the case with a ValueError or RuntimeError."""
    data = dataset(case, g)
    assert case.bad, "the case lists no bad input"
    for name, bad in case.bad.items():
        metric = case.make(data)
        try:
            metric.update(*bad(data))
        except (ValueError, RuntimeError):
            continue
        raise AssertionError(f"update accepted {name}")


def check_scriptable(case: Case, g: torch.Generator) -> None:
    """torch.jit.script(metric) works (forward(*args) marked unused, as torchmetrics does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(case.make(dataset(case, g)))


CHECKS: dict[str, Callable[[Case, torch.Generator], None]] = {
    "class = functional (random splits, orders, sizes)": check_splits,
    "pickle, deepcopy, clone": check_pickle,
    "state_dict round trip, then updates": check_state_dict,
    "reset": check_reset,
    "forward = update": check_forward,
    "merge_state": check_merge,
    "dtype moves": check_dtypes,
    "compute twice": check_twice,
    "compute returns a fresh result": check_fresh,
    "bad inputs refused at update": check_bad_inputs,
    "torch.jit.script": check_scriptable,
}
DISTRIBUTED = ("DDP, uneven shards", "DDP, failed compute then reset")


def run_check(check: Callable[[Case, torch.Generator], None], case: Case, seed: int = 0) -> str:
    """'pass', or 'FAIL: <why>' in one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            check(case, torch.Generator().manual_seed(seed))
        except Exception as exc:  # the harness reports what failed, whatever it is
            why = " ".join(str(exc).split())[:90] or type(exc).__name__
            return f"FAIL: {type(exc).__name__}: {why}"
    return "pass"


def _n(data: Data) -> int:
    return len(next(iter(data.values())))


# -- distributed checks: one spawn of `world` gloo processes runs every case --------------


def shard(case: Case, n: int, rank: int, world: int, g: torch.Generator) -> Tensor:
    """This rank's positions: for a case in dataset order, DistributedSampler's dealing
    (rank r: r, r + world, ...; shards differ by one); else an uneven random split (a rank
    may get nothing), in random order."""
    if case.ordered:
        return torch.arange(rank, n, world)
    order = torch.randperm(n, generator=g)
    low = 0 if case.empty_shards else 1  # torchmetrics' list states cannot be gathered empty
    cuts = torch.randint(low, n + 1 - low, (world - 1,), generator=g)
    cuts = torch.sort(cuts).values.tolist() if low == 0 else sorted(_spread(cuts.tolist(), n))
    bounds = [0, *cuts, n]
    return order[bounds[rank] : bounds[rank + 1]]


def _spread(cuts: list[int], n: int) -> list[int]:
    """Distinct cuts in 1..n-1 (every shard gets at least one row)."""
    picked = sorted(set(cuts))
    for c in range(1, n):
        if len(picked) == len(cuts):
            break
        if c not in picked:
            picked.append(c)
    return sorted(picked)


def ddp_uneven(case: Case, rank: int, world: int) -> None:
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)  # the same on every rank
        data = dataset(case, g, world, 30)
        mine = shard(case, _n(data), rank, world, g)
        parts = list(mine.split(3)) if len(mine) else []
        metric = fed(case, data, parts)
        assert_same(metric.compute(), case.reference(data), case.atol)


def ddp_failed_compute(case: Case, rank: int, world: int) -> None:
    assert case.fail is not None
    g = torch.Generator().manual_seed(7)
    data = dataset(case, g, world, 30)
    mine = shard(case, _n(data), rank, world, g)
    metric = case.make(data)
    case.fail(metric, data, mine)
    try:
        metric.compute()
    except Exception:  # the failure the case set up: the metric must recover from it
        pass
    else:
        raise AssertionError("compute() did not fail as the case set up")
    metric.reset()
    fed(case, data, list(mine.split(3)) if len(mine) else [], metric)
    assert_same(metric.compute(), case.reference(data), case.atol)


def _distributed_worker(rank: int, world: int, port: int, cases: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    results: dict[str, dict[str, str]] = {}
    try:
        for case in case_table(cases):
            row = results.setdefault(case.name, {})
            for name, check in zip(DISTRIBUTED, (ddp_uneven, ddp_failed_compute), strict=True):
                if check is ddp_failed_compute and case.fail is None:
                    row[name] = "n/a"
                    continue
                row[name] = run_check(lambda c, g, f=check: f(c, rank, world), case)
                dist.barrier()  # a rank that failed alone does not leave the others waiting
    finally:
        Path(out, f"rank{rank}.json").write_text(json.dumps(results))
        dist.destroy_process_group()


def run_distributed(cases: str, world: int, out: Path) -> dict[str, dict[str, str]]:
    """The distributed checks of the cases of ``case_table(cases)`` in ``world`` gloo
    processes: {case: {check: result}}, a check passing where it passes on every rank."""
    import torch.multiprocessing as mp  # spawn: only the distributed tests start processes

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out.mkdir(parents=True, exist_ok=True)
    env = {"OMP_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        mp.spawn(_distributed_worker, args=(world, port, cases, str(out)), nprocs=world)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]
    merged: dict[str, dict[str, str]] = {}
    for case, row in ranks[0].items():
        merged[case] = {
            check: next((r[case][check] for r in ranks if r[case][check] != "pass"), "pass")
            for check in row
        }
    return merged


# -- the cases: the project's metric ---------------------------------------------------------


def draw_labelled(g: torch.Generator, n: int) -> Data:
    """Logits of a model that is right about half the time, each image's class, its valid
    labels (the class and sometimes another; some images none), its position."""
    target = torch.randint(0, CLASSES, (n,), generator=g)
    logits = torch.randn(n, CLASSES, generator=g) * 2
    logits[torch.arange(n), target] += 2 * torch.rand(n, generator=g)
    valid = torch.zeros(n, CLASSES, dtype=torch.bool)
    valid[torch.arange(n), target] = True
    other = torch.randint(0, CLASSES, (n,), generator=g)
    extra = torch.rand(n, generator=g) < 0.3
    valid[torch.arange(n)[extra], other[extra]] = True
    valid[torch.rand(n, generator=g) < 0.15] = False  # images without a label set
    return {"logits": logits, "target": target, "valid": valid, "index": torch.arange(n)}


def _capability_bad(labelled: bool) -> dict[str, Callable[[Data], tuple]]:
    def args(logits=None, target=None, valid=None, index=None):
        def make(d: Data) -> tuple:
            lo = d["logits"][:4] if logits is None else logits(d["logits"][:4])
            ta = d["target"][:4] if target is None else target(d["target"][:4])
            va = d["valid"][:4] if valid is None else valid(d["valid"][:4])
            ix = d["index"][:4] if index is None else index(d["index"][:4])
            return (lo, ta, va if labelled else None, ix)

        return make

    bad = {
        f"target {v}": args(target=lambda t, v=v: torch.full_like(t, v))
        for v in (CLASSES, 5000, -1, -100)
    }
    bad |= {
        "float target 3.7": args(target=lambda t: torch.full(t.shape, 3.7)),
        "bool target": args(target=lambda t: t > 0),
        "integer logits": args(logits=lambda x: x.long()),
        "logits of another width": args(logits=lambda x: x[:, :-1]),
        "float index": args(index=lambda i: i.float()),
        "index -1": args(index=lambda i: i - 1),
        "index of another length": args(index=lambda i: i[:-1]),
        "target of another length": args(target=lambda t: t[:-1]),
    }
    if labelled:
        bad |= {
            "valid 0.3 (soft labels)": args(valid=lambda v: v.float() * 0.3),
            "valid -1 (unknown)": args(valid=lambda v: torch.full(v.shape, -1)),
            "valid of another shape": args(valid=lambda v: v[:, :-1]),
        }
    return bad


def _conflicting_copy(metric: Metric, data: Data, mine: Tensor) -> None:
    """The rank's shard, and on rank 0 image 0's index for an image of another class."""
    for rows in mine.split(3) if len(mine) else []:
        metric.update(data["logits"][rows], data["target"][rows], data["valid"][rows], rows)
    if dist.get_rank() == 0:
        wrong = (data["target"][:1] + 1) % CLASSES
        metric.update(data["logits"][:1], wrong, data["valid"][:1], torch.tensor([0]))


def _a_missing_image(metric: Metric, data: Data, mine: Tensor) -> None:
    """The rank's shard, rank 0's last image left out (dataset_size then unmet)."""
    if dist.get_rank() == 0:
        mine = mine[:-1]
    for rows in mine.split(3) if len(mine) else []:
        metric.update(data["logits"][rows], data["target"][rows], data["valid"][rows])


def _ours_by_index() -> Case:
    return Case(
        name="MultiLabelCapability (index)",
        make=lambda d: MultiLabelCapability(num_classes=CLASSES),
        draw=draw_labelled,
        args=lambda d, r: (d["logits"][r], d["target"][r], d["valid"][r], d["index"][r]),
        reference=lambda d: multilabel_capability(d["logits"], d["target"], d["valid"]),
        bad=_capability_bad(labelled=True),
        fail=_conflicting_copy,
    )


def _ours_by_order() -> Case:
    return Case(
        name="MultiLabelCapability (dataset order, dataset_size)",
        make=lambda d: MultiLabelCapability(num_classes=CLASSES, dataset_size=_n(d)),
        draw=draw_labelled,
        args=lambda d, r: (d["logits"][r], d["target"][r], d["valid"][r]),
        reference=lambda d: multilabel_capability(d["logits"], d["target"], d["valid"]),
        ordered=True,
        bad={
            k: (lambda d, f=f: f(d)[:3])
            for k, f in _capability_bad(labelled=True).items()
            if "index" not in k
        },
        fail=_a_missing_image,
    )


def _ours_single() -> Case:
    def fail(metric: Metric, data: Data, mine: Tensor) -> None:
        for rows in mine.split(3) if len(mine) else []:
            metric.update(data["logits"][rows], data["target"][rows], None, rows)
        if dist.get_rank() == 0:
            wrong = (data["target"][:1] + 1) % CLASSES
            metric.update(data["logits"][:1], wrong, None, torch.tensor([0]))

    return Case(
        name="MultiLabelCapability (no label set)",
        make=lambda d: MultiLabelCapability(num_classes=CLASSES, with_valid=False),
        draw=draw_labelled,
        args=lambda d, r: (d["logits"][r], d["target"][r], None, d["index"][r]),
        reference=lambda d: multilabel_capability(d["logits"], d["target"], None),
        bad=_capability_bad(labelled=False),
        fail=fail,
    )


# -- the cases: a metric known to be right, and metrics broken on purpose ------------------


def draw_multilabel(g: torch.Generator, n: int) -> Data:
    """Scores within 1e-3 of each other: float16 would tie them (a dtype move that reaches
    the states changes the ranking)."""
    return {
        "preds": 0.5 + 1e-3 * torch.rand(n, CLASSES, generator=g),
        "target": torch.randint(0, 2, (n, CLASSES), generator=g),
    }


_AP_BAD: dict[str, Callable[[Data], tuple]] = {
    "target 2": lambda d: (d["preds"][:4], torch.full_like(d["target"][:4], 2)),
    "preds of another width": lambda d: (d["preds"][:4, :-1], d["target"][:4]),
}


def _torchmetrics_ap(make: Callable[[], Metric] | None = None, name: str = "") -> Case:
    return Case(
        name=name or "torchmetrics MultilabelAveragePrecision",
        make=lambda d: (make or (lambda: MultilabelAveragePrecision(num_labels=CLASSES)))(),
        draw=draw_multilabel,
        args=lambda d, r: (d["preds"][r], d["target"][r]),
        reference=lambda d: multilabel_average_precision(d["preds"], d["target"], CLASSES),
        bad=_AP_BAD,
        empty_shards=False,
        atol=1e-6,  # a gather's other order of float sums
        low_precision_atol=math.inf,  # set_dtype(float16): computes in float16, as asked
    )


class BrokenAP(MultilabelAveragePrecision):
    """torchmetrics' MultilabelAveragePrecision with one bug (``bug``) put in on purpose."""

    def __init__(self, bug: str, **kwargs: Any) -> None:
        super().__init__(num_labels=CLASSES, validate_args=bug != "no input checks", **kwargs)
        self.bug = bug
        self.fail_next = False

    def update(self, preds: Tensor, target: Tensor) -> None:
        if self.bug == "keeps the last batch only":
            self.preds, self.target = [], []
        super().update(preds, target)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        if self.bug == "pickles without its states":
            state = {**state, "preds": [], "target": []}
        return state

    def state_dict(self, *args: Any, **kwargs: Any) -> dict:
        if self.bug == "saves no state":
            return torch.nn.Module.state_dict(self, *args, **kwargs)
        return super().state_dict(*args, **kwargs)

    def reset(self) -> None:
        if self.bug != "reset keeps the states":
            super().reset()

    @torch.jit.unused
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.bug == "forward does not update":
            return multilabel_average_precision(*args, CLASSES)
        return super().forward(*args, **kwargs)

    def merge_state(self, incoming_state: Any) -> None:
        if self.bug != "merge_state drops the incoming":
            super().merge_state(incoming_state)

    def half(self) -> Metric:  # torchmetrics keeps .half() off the states
        if self.bug == "module moves convert the states":
            self._dtype_convert = True
            try:
                return torch.nn.Module.half(self)
            finally:
                self._dtype_convert = False
        return super().half()

    def compute(self) -> Tensor:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("a compute() that fails (on purpose)")
        value = super().compute()
        if self.bug == "compute consumes the states":
            self.preds.clear()
            self.target.clear()
        return value

    def _sync_dist(
        self, dist_sync_fn: Callable = gather_all_tensors, process_group: Any = None
    ) -> None:
        if self.bug != "does not gather across ranks":
            super()._sync_dist(dist_sync_fn, process_group)


class UnscriptableAP(BrokenAP):
    def forward(self, *args, **kwargs):  # not marked torch.jit.unused
        return super().forward(*args, **kwargs)


def _broken(bug: str) -> Case:
    def make() -> Metric:
        if bug == "forward(*args) not marked unused":
            return UnscriptableAP(bug)
        metric = BrokenAP(bug)
        if bug == "compute consumes the states":
            metric.compute_with_cache = False
        return metric

    case = _torchmetrics_ap(make, name=f"broken: {bug}")
    if bug == "a failed compute leaves it synced":

        def fail(metric: Metric, data: Data, mine: Tensor) -> None:
            fed(case, data, list(mine.split(3)) if len(mine) else [], metric)
            metric.fail_next = True

        case.fail = fail
    return case


#: for each check, the bug it is there to catch
BUGS: dict[str, str] = {
    "class = functional (random splits, orders, sizes)": "keeps the last batch only",
    "pickle, deepcopy, clone": "pickles without its states",
    "state_dict round trip, then updates": "saves no state",
    "reset": "reset keeps the states",
    "forward = update": "forward does not update",
    "merge_state": "merge_state drops the incoming",
    "dtype moves": "module moves convert the states",
    "compute twice": "compute consumes the states",
    "compute returns a fresh result": "returns its cache (torchmetrics' own behaviour)",
    "bad inputs refused at update": "no input checks",
    "torch.jit.script": "forward(*args) not marked unused",
    "DDP, uneven shards": "does not gather across ranks",
    "DDP, failed compute then reset": "a failed compute leaves it synced",
}


def case_table(which: str) -> list[Case]:
    """``ours``: every public metric's cases; ``reference``: torchmetrics' AP;
    ``broken``: one broken metric per bug of :data:`BUGS`; ``ddp``: those the distributed
    checks run."""
    if which == "ours":
        return [_ours_by_index(), _ours_by_order(), _ours_single()]
    if which == "reference":
        return [_torchmetrics_ap()]
    if which == "ddp":  # what the distributed checks run
        return [*case_table("ours"), _torchmetrics_ap(), *(_broken(BUGS[d]) for d in DISTRIBUTED)]
    return [_broken(bug) for bug in dict.fromkeys(BUGS.values())]


def table(rows: dict[str, dict[str, str]]) -> str:
    """A Markdown table: check | column..."""
    columns = list(next(iter(rows.values())))
    lines = ["| check | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for check, row in rows.items():
        lines.append(f"| {check} | " + " | ".join(row[c] for c in columns) + " |")
    return "\n".join(lines)


def harness_table(distributed: dict[int, dict[str, dict[str, str]]]) -> dict[str, dict[str, str]]:
    """check -> {MultiLabelCapability (all its cases), the torchmetrics reference, the
    metric broken on purpose for that check}; ``distributed``: {world: run_distributed's
    results for case_table("ddp")}."""
    ours, (reference,) = case_table("ours"), case_table("reference")
    broken = {c.name: c for c in case_table("broken")}
    rows: dict[str, dict[str, str]] = {}

    def column(results: list[str]) -> str:
        failed = [r for r in results if r not in ("pass", "n/a")]
        return failed[0] if failed else ("n/a" if all(r == "n/a" for r in results) else "pass")

    for check, fn in CHECKS.items():
        bug = broken[f"broken: {BUGS[check]}"]
        rows[check] = {
            "MultiLabelCapability": column([run_check(fn, c) for c in ours]),
            "torchmetrics MultilabelAveragePrecision": run_check(fn, reference),
            "broken on purpose": f"{BUGS[check]}: {run_check(fn, bug)}",
        }
    for world, results in distributed.items():
        for check in DISTRIBUTED:
            rows[f"{check} ({world} processes)"] = {
                "MultiLabelCapability": column([results[c.name][check] for c in ours]),
                "torchmetrics MultilabelAveragePrecision": results[reference.name][check],
                "broken on purpose": (f"{BUGS[check]}: {results[f'broken: {BUGS[check]}'][check]}"),
            }
    return rows


if __name__ == "__main__":  # the table of docs/metrics-api.md: python -m tests.scoring.harness
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ddp = {w: run_distributed("ddp", w, Path(tmp, str(w))) for w in (2, 3)}
    print(table(harness_table(ddp)))

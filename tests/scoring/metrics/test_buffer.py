"""The evaluation's metric path, PredictionBuffer -> heads: predictions buffered in
batches, in any order, on one process or gathered from a real 2-process gloo pool with
uneven shards, give exactly the metrics of the whole tensors."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
import torch

from imagenet_multilabel.scoring.heads import MultiLabelHead, SingleLabelHead
from imagenet_multilabel.scoring.metrics.buffer import PredictionBuffer, Predictions, cat_rows
from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer

N, C = 57, 11
HEAD_SETS = {  # one multi-label head per set: heads of a set share metric names
    "default": {"single": SingleLabelHead(), "multilabel": MultiLabelHead(min_subgroup_size=2)},
    "cumulative": {"multilabel": MultiLabelHead("cumulative", mass=0.7)},
    "sigmoid": {"multilabel": MultiLabelHead("threshold", "sigmoid", threshold=0.6)},
}


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


def buffered(rows: torch.Tensor, batch: int) -> Predictions:
    """The images ``rows`` put into a buffer in batches (gathered when distributed)."""
    logits, target, valid = data()
    buffer = PredictionBuffer(N, with_valid=True, num_classes=C)
    for a in range(0, len(rows), batch):
        idx = rows[a : a + batch]
        buffer.update(idx, logits[idx], target[idx], valid[idx])
    return buffer.compute()


def metrics(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    out = {}
    for name, heads in HEAD_SETS.items():
        scored = Scorer({n: HeadSpec(h) for n, h in heads.items()}).score(
            "d", logits, target, valid
        )
        out.update({f"{name}/{k}": v for k, v in scored.items()})
    return out


def assert_identical(got: dict[str, float], want: dict[str, float]) -> None:
    assert list(got) == list(want)
    bad = {
        k: (got[k], want[k])
        for k in want
        if not (got[k] == want[k] or (math.isnan(got[k]) and math.isnan(want[k])))
    }
    assert not bad


@pytest.mark.parametrize("batch", [1, 8, N])
def test_buffered_batches_in_any_order_give_the_same_metrics(batch):
    rows = torch.randperm(N, generator=torch.Generator().manual_seed(batch))
    preds = buffered(rows, batch)
    logits, target, valid = data()
    assert torch.equal(preds.logits, logits) and torch.equal(preds.target, target)
    assert torch.equal(preds.valid, valid)
    assert_identical(metrics(preds.logits, preds.target, preds.valid), metrics(*data()))


def test_batches_in_order_are_joined_without_a_copy_and_pickled_as_their_rows() -> None:
    """With the dataset size known, the batches are written into the rows of one
    preallocated tensor per state: they are joined with no copy (the logits are the stored
    ones), a pickle holds each batch's rows once (not the whole preallocated
    tensor per batch), and batches past the dataset's size are kept as they are (the buffer
    then says what is wrong)."""
    logits, target, valid = data()
    buffer = PredictionBuffer(N, with_valid=True, num_classes=C)
    plain = PredictionBuffer(0, with_valid=True, num_classes=C)  # size unknown: batches kept
    for rows in torch.arange(N).chunk(6):
        for buf in (buffer, plain):
            buf.update(rows, logits[rows], target[rows], valid[rows])
    assert plain._arena is None
    pickled = pickle.dumps(buffer)
    assert len(pickled) <= len(pickle.dumps(plain)) + 100
    joined = buffer.sorted_states()[1]
    assert joined.data_ptr() == buffer.logits[0].data_ptr()  # no copy
    preds = buffer.compute()
    assert torch.equal(preds.logits, logits) and torch.equal(preds.valid, valid)
    assert_identical(metrics(preds.logits, preds.target, preds.valid), metrics(*data()))
    again = pickle.loads(pickled).compute()
    assert torch.equal(again.logits, logits) and torch.equal(again.valid, valid)
    buffer.update(torch.tensor([0]), logits[:1], target[:1], valid[:1])  # one image too many
    with pytest.raises(RuntimeError, match="every image must be scored exactly once"):
        buffer.compute()
    buffer.reset()  # a new pass writes into new rows: the rows joined before stay as they were
    buffer.update(torch.arange(N), -logits, target, valid)
    assert torch.equal(joined, logits) and torch.equal(buffer.compute().logits, -logits)


def test_compute_returns_the_joined_rows_without_a_copy() -> None:
    """compute() returns the predictions as it joined them (torchmetrics would clone them):
    the preallocated rows themselves, also from its cache; a pickle, a deep copy or a device
    move recomputes them from their own states, and rows returned stay as they were after a
    reset and further updates."""
    logits, target, valid = data()
    buffer = PredictionBuffer(N, with_valid=True, num_classes=C)
    for rows in torch.arange(N).chunk(3):
        buffer.update(rows, logits[rows], target[rows], valid[rows])
    pickled = len(pickle.dumps(buffer))
    preds = buffer.compute()
    assert len(pickle.dumps(buffer)) <= pickled + 100  # its states, not the predictions again
    stored = buffer.logits[0].data_ptr()
    assert preds.logits.data_ptr() == stored and buffer.compute() is preds  # cached
    for other in (pickle.loads(pickle.dumps(buffer)), buffer.clone(), buffer.to("cpu")):
        again = other.compute()
        assert torch.equal(again.logits, logits) and torch.equal(again.valid, valid)
        assert torch.equal(again.target, target) and torch.equal(again.index, torch.arange(N))
        if other is not buffer:
            assert again.logits.data_ptr() != stored
    buffer.reset()
    buffer.update(torch.arange(N), -logits, target, valid)
    assert torch.equal(buffer.compute().logits, -logits) and torch.equal(preds.logits, logits)


def test_cat_rows_gives_what_torch_cat_gives() -> None:
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(n, 5, generator=g) < 0.5).to(torch.uint8) for n in (3, 0, 4, 1)]
    want = torch.cat(batches)
    got = cat_rows([batches, batches[:1], torch.arange(3)], [torch.bool, None, None])
    assert torch.equal(got[0], want.bool()) and got[0].dtype == torch.bool
    assert got[1] is batches[0] and torch.equal(got[2], torch.arange(3))  # no copy of one
    assert torch.equal(
        cat_rows([[torch.tensor(1), torch.tensor([2, 3])]], [None])[0], torch.tensor([1, 2, 3])
    )  # 0-d batches, as torchmetrics' dim_zero_cat


@pytest.mark.parametrize("classes", [1, C])
def test_a_dataset_of_one_image_keeps_its_shapes(classes: int) -> None:
    """torchmetrics squeezes one-element results of compute(): one image (and one class)
    must still give (1, C) logits and valid labels and a (1,) target, also after a pickle
    round trip (which wraps compute() anew)."""
    buffer = PredictionBuffer(1, with_valid=True, num_classes=classes)
    logits = torch.arange(classes, 0, -1).float()[None]  # class 0 first
    buffer.update(torch.tensor([0]), logits, torch.tensor([0]), torch.ones(1, classes))
    for buf in (buffer, pickle.loads(pickle.dumps(buffer))):
        preds = buf.compute()
        assert preds.logits.shape == (1, classes) and preds.valid.shape == (1, classes)
        assert preds.target.shape == (1,) and len(preds) == 1
    single = Scorer({"single": HeadSpec(SingleLabelHead())}).score(
        "d", preds.logits, preds.target, preds.valid
    )
    assert single["num_images"] == 1 and single["top1"] == 100.0


def _worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.set_num_threads(1)  # a forked child: no OpenMP pool of its own
    try:
        rows = torch.arange(N)
        shard = rows[:20] if rank == 0 else rows[20:]  # uneven: 20 and 37 images
        preds = buffered(shard, 6 if rank == 0 else 9)
        scored = metrics(preds.logits, preds.target, preds.valid)
        Path(out, f"{rank}.pkl").write_bytes(pickle.dumps(scored))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.ddp
def test_two_processes_equal_one_exactly(tmp_path: Path):
    from lightning.fabric.plugins.environments.lightning import find_free_network_port

    torch.multiprocessing.start_processes(  # fork: no re-import, seconds instead of a minute
        _worker,
        args=(find_free_network_port(), str(tmp_path)),
        nprocs=2,
        start_method="fork",
    )
    want = metrics(*data())
    for rank in range(2):
        assert_identical(pickle.loads((tmp_path / f"{rank}.pkl").read_bytes()), want)

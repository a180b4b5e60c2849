"""The metrics as a public API: ``MultiLabelCapability`` (a torchmetrics ``Metric``) and
``multilabel_capability``, used as a user would (their own LightningModule, a plain loop,
DDP with Lightning's default sampler), give exactly the numbers ``evaluate.py`` writes to
metrics.json for the same model and data: every key, bit for bit.

The user's side is written here with timm, torch and Lightning only; the package gives the
data (its demo photos and two-photo composites with their valid labels), the ImageNet weights
of the default model and the metric. The model is the default one, timm's
``tf_efficientnet_lite0`` with the weights ``evaluate.py`` loads: real predictions, so that
every metric is far from a trivial value (a random-weight model predicts nearly uniform
softmax scores: every top-1 score in ECE's first bin, every accuracy 0, so that a wrong
option of a head can go unseen). ``evaluate.py`` pads a partial batch to the
batch size (kernels round by shape); the user's forward here does the same, so each
image's logits are those of ``evaluate.py`` whatever batch or rank it falls in; it also
runs channels-last, as ``evaluate.py`` does by default.

Run as a module (``python -m tests.scoring.test_capability OUT DEVICES``), this module is
the user's training script: Lightning's ``ddp`` strategy starts the other ranks by running
it again.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import lightning as L
import pytest
import timm
import torch
from timm.data import create_transform, resolve_data_config
from torch import nn
from torch.utils.data import DataLoader, Dataset

from imagenet_multilabel.data.datasets.composites import CompositeDataset
from imagenet_multilabel.data.datasets.folders import WnidFilesDataset
from imagenet_multilabel.models.backbones import lite_package_state_dict
from imagenet_multilabel.runs.image_sets import split_image_sets
from imagenet_multilabel.scoring import MultiLabelCapability, multilabel_capability
from imagenet_multilabel.scoring.metrics.catalog import family
from imagenet_multilabel.scoring.scorer import NonFiniteLogitsError
from tests.helpers import ONE_THREAD, evaluate_py, run

MODEL = "tf_efficientnet_lite0"  # evaluate.py's default model
BATCH = 16  # 100 photos = 6 x 16 + 4, 49 composites = 3 x 16 + 1: partial batches
COMPOSITES = 49  # odd: under DDP, DistributedSampler repeats one to even out the shards
EVALUATE_ARGS = (
    "data=demo_suite",
    f"data.patchml.num_images={COMPOSITES}",
    f"batch_size={BATCH}",
    "num_workers=0",
    "callbacks=none",
)


# -- the user's code ------------------------------------------------------------------------


class WithValid(Dataset):
    """Adds each image's multi-hot valid labels to its item (an all-false row: none)."""

    def __init__(self, dataset: Dataset, valid: torch.Tensor) -> None:
        self.dataset, self.valid = dataset, valid

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[i], "valid": self.valid[i]}


def user_model() -> nn.Module:
    model = timm.create_model(MODEL).eval()
    model.load_state_dict(lite_package_state_dict())  # the weights evaluate.py loads
    return model.to(memory_format=torch.channels_last)  # as evaluate.py (channels_last=true)


def user_datasets(model: nn.Module) -> dict[str, Dataset]:
    """The demo photos (no label set) and composites of two (valid: both tiles' classes),
    items ``{"image", "target", "index"[, "valid"]}``, with timm's eval transform."""
    transform = create_transform(**resolve_data_config(model=model), is_training=False)
    demo = WnidFilesDataset(transform=transform)
    base = WnidFilesDataset()
    patchml = CompositeDataset(base, rows=1, cols=2, num_images=COMPOSITES, transform=transform)
    return {"demo": demo, "patchml": WithValid(patchml, patchml.valid_labels)}


def padded(images: torch.Tensor) -> torch.Tensor:
    """The batch padded to BATCH images, as evaluate.py pads a partial one, channels-last
    as evaluate.py feeds it (kernels round by shape and memory format)."""
    pad = images.new_zeros((BATCH - len(images), *images.shape[1:]))
    return torch.cat([images, pad]).contiguous(memory_format=torch.channels_last)


class UserModule(L.LightningModule):
    """A user's LightningModule: a timm model, one metric per validation dataloader (and a
    second that is given no index), updated in ``validation_step``, logged at the end."""

    def __init__(self, model: nn.Module, datasets: dict[str, Dataset]) -> None:
        super().__init__()
        self.model = model
        self.names = list(datasets)
        labelled = {name: "valid" in ds[0] for name, ds in datasets.items()}
        self.by_index = nn.ModuleDict(
            {name: MultiLabelCapability(with_valid=v) for name, v in labelled.items()}
        )
        self.by_order = nn.ModuleDict(  # no index: DistributedSampler's order, dataset_size
            {
                name: MultiLabelCapability(with_valid=v, dataset_size=len(datasets[name]))
                for name, v in labelled.items()
            }
        )
        self.results: dict[str, dict[str, float]] = {}
        self.seen = dict.fromkeys(self.names, 0)  # images this rank updated with

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        images = batch["image"]
        logits = self.model(padded(images))[: len(images)]
        name = self.names[dataloader_idx]
        self.seen[name] += len(images)
        valid = batch.get("valid")
        self.by_index[name].update(logits, batch["target"], valid, index=batch["index"])
        self.by_order[name](logits, batch["target"], valid)  # calling it updates it

    def on_validation_epoch_end(self) -> None:
        for name in self.names:
            metrics = self.by_index[name].compute()  # collective under DDP
            self.results[name] = metrics
            self.results[f"{name}.by_order"] = self.by_order[name].compute()
            self.log_dict({f"{name}/{k}": v for k, v in metrics.items()})
            self.by_index[name].reset()
            self.by_order[name].reset()


def user_loaders(datasets: dict[str, Dataset]) -> list[DataLoader]:
    return [DataLoader(ds, batch_size=BATCH, num_workers=0) for ds in datasets.values()]


def run_lightning(devices: int = 1) -> tuple[dict[str, dict[str, float]], L.Trainer]:
    """Validate the user's module on the demo data with a real Trainer (CPU)."""
    model = user_model()
    datasets = user_datasets(model)
    module = UserModule(model, datasets)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.validate(module, dataloaders=user_loaders(datasets), verbose=False)
    return module.results, trainer


# -- comparing with evaluate.py -------------------------------------------------------------


def same(a: float, b: float) -> bool:
    """Equal to the last bit (NaN equals NaN; metrics.json writes NaN as null)."""
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return isinstance(a, float) and math.isnan(a)
    return type(a) is type(b) and a == b


def assert_same_metrics(got: dict[str, float], written: dict[str, float]) -> None:
    """``got``: a dataset's metrics; ``written``: the same dataset's keys of metrics.json."""
    assert list(got) == list(written)  # the same keys, in the same order
    differ = {k: (got[k], written[k]) for k in written if not same(got[k], written[k])}
    assert not differ


def per_dataset(flat: dict[str, float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        dataset, _, metric = key.partition("/")
        out.setdefault(dataset, {})[metric] = value
    return out


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> dict[str, dict[str, float]]:
    """metrics.json of ``python evaluate.py`` on the demo photos and composites, by dataset."""
    run_dir = tmp_path_factory.mktemp("evaluate") / "run"
    args = (*EVALUATE_ARGS, f"hydra.run.dir={run_dir}")
    proc = evaluate_py(*args, env=ONE_THREAD, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics, image_sets = split_image_sets(
        per_dataset(json.loads((run_dir / "metrics.json").read_text()))
    )
    assert image_sets["demo"]["num_distinct_images"] == 100  # which images: no metric
    assert metrics["demo"]["num_images"] == 100
    assert metrics["patchml"]["num_images"] == COMPOSITES == metrics["patchml"]["num_labeled"]
    assert "real_top1" not in metrics["demo"] and "asma" in metrics["patchml"]
    assert metrics["demo"]["top1"] > 50 and 0 < metrics["patchml"]["asma"] < 100  # real weights
    return metrics


@pytest.fixture
def one_thread():
    """evaluate.py runs with OMP_NUM_THREADS=1 here: float results of oneDNN depend on a
    process's thread count, so the in-process user code uses one thread too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.slow
def test_users_lightning_module_gives_evaluates_numbers(evaluated, one_thread) -> None:
    results, trainer = run_lightning()
    assert trainer.world_size == 1
    assert trainer.lightning_module.seen == {"demo": 100, "patchml": COMPOSITES}
    for name in ("demo", "patchml"):
        assert_same_metrics(results[name], evaluated[name])
        assert_same_metrics(results[f"{name}.by_order"], evaluated[name])


@pytest.mark.slow
def test_plain_loop_class_and_functional_give_evaluates_numbers(evaluated, one_thread) -> None:
    model = user_model()
    datasets = user_datasets(model)
    for name, dataset in datasets.items():
        labelled = "valid" in dataset[0]
        metric = MultiLabelCapability(with_valid=labelled)
        batches = []
        with torch.inference_mode():
            for batch in DataLoader(dataset, batch_size=BATCH):
                images = batch["image"]
                logits = model(padded(images))[: len(images)]
                metric.update(logits, batch["target"], batch.get("valid"))
                batches.append((logits, batch["target"], batch.get("valid")))
        logits, target, valid = (
            torch.cat(t) if t[0] is not None else None for t in zip(*batches, strict=True)
        )
        assert_same_metrics(metric.compute(), evaluated[name])
        assert_same_metrics(multilabel_capability(logits, target, valid), evaluated[name])


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_two_processes_give_one_process_numbers(evaluated, tmp_path: Path) -> None:
    """The user's module under Lightning's ``ddp`` (2 CPU processes, gloo, the default
    DistributedSampler: 25 + 25 composites, one of them a repeat): every rank gets the
    numbers of one process (test_users_lightning_module_gives_evaluates_numbers runs it) and
    of evaluate.py, by index and by order."""
    # as a module of the repository (python -m adds it to sys.path; DDP's ranks are started
    # the same way)
    proc = run(["-m", "tests.scoring.test_capability", str(tmp_path), "2"], env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["world_size"] == 2
    for rank in ranks:  # 50 + 50 photos; 25 + 25 composites: 49 and a repeat
        assert rank["seen"] == {"demo": 50, "patchml": 25}
    for results in ranks:
        for name in ("demo", "patchml"):
            assert_same_metrics(results[name], evaluated[name])
            assert_same_metrics(results[f"{name}.by_order"], evaluated[name])


@pytest.mark.slow
def test_the_readme_example_runs_offline_as_written(tmp_path: Path) -> None:
    """README.md's example (also docs/metrics-api.md's), run as a script offline from
    another folder: it prints what the README says it prints."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    section = readme.read_text().split("## Metrics in your own code", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    printed = section.split("prints\n`", 1)[1].split("`", 1)[0]
    docs = readme.parent / "docs" / "metrics-api.md"
    assert code in docs.read_text()  # the same example in both
    script = tmp_path / "example.py"
    script.write_text(code)
    proc = run([str(script)], env={"HF_HUB_OFFLINE": "1", **ONE_THREAD}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == printed


# -- smaller checks of the contract ---------------------------------------------------------


def random_batch(n: int = 23, c: int = 1000) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(n, c, generator=g)
    target = torch.randint(0, c, (n,), generator=g)
    valid = torch.zeros(n, c, dtype=torch.bool)
    valid[torch.arange(n), target] = True
    valid[::3, 7] = True
    valid[::5] = False  # images without a valid label
    return logits, target, valid


def test_updates_in_any_order_with_repeats_give_the_whole_tensors_numbers() -> None:
    logits, target, valid = random_batch()
    want = multilabel_capability(logits, target, valid)
    metric = MultiLabelCapability(dataset_size=len(target))
    order = torch.cat([torch.randperm(len(target)), torch.tensor([0, 4])])  # 2 repeats
    for rows in order.split(5):
        metric.update(logits[rows], target[rows], valid[rows], index=rows)
    assert_same_metrics(metric.compute(), want)
    assert want["num_unlabeled"] == 5


def test_an_index_for_two_images_or_a_missing_image_is_an_error() -> None:
    logits, target, valid = random_batch()
    index = torch.arange(len(target))
    index[-1] = 0  # the last image given image 0's index
    assert target[-1] != target[0]
    metric = MultiLabelCapability()
    metric.update(logits, target, valid, index=index)
    with pytest.raises(RuntimeError, match="index 0 was given for two different images"):
        metric.compute()
    metric = MultiLabelCapability(dataset_size=len(target) + 1)
    metric.update(logits, target, valid)
    with pytest.raises(RuntimeError, match="every image of 0..23 must be scored"):
        metric.compute()


@pytest.mark.parametrize(
    ("options", "overrides"),
    [
        ({}, []),
        ({"heads": "single", "ece_bins": 10}, ["head=single", "head.single.ece_bins=10"]),
        (
            {"heads": "multilabel", "mode": "topk", "k": 3, "confidences": [0.9]},
            [
                "head=multilabel",
                "head.multilabel.mode=topk",
                "head.multilabel.k=3",
                "head.multilabel.confidences=[0.9]",
            ],
        ),
        (
            {"mode": "threshold", "scores": "sigmoid", "threshold": 0.3, "min_subgroup_size": 2},
            [
                "head.multilabel.mode=threshold",
                "head.multilabel.scores=sigmoid",
                "head.multilabel.threshold=0.3",
                "head.multilabel.min_subgroup_size=2",
            ],
        ),
        (
            {"mode": "cumulative", "mass": 0.5},
            ["head.multilabel.mode=cumulative", "head.multilabel.mass=0.5"],
        ),
    ],
)
def test_head_options_are_those_of_the_head_config(compose_cfg, options, overrides) -> None:
    """The metric's arguments give the numbers of evaluate.py's ``head=...`` options (the
    scorer that the run builds from the composed config)."""
    from imagenet_multilabel.builders import build_scorer

    logits, target, valid = random_batch()
    scorer = build_scorer(compose_cfg(*overrides).head)
    metric = MultiLabelCapability(**options)
    metric.update(logits, target, valid)
    assert_same_metrics(metric.compute(), scorer.score("d", logits, target, valid))
    assert_same_metrics(
        multilabel_capability(logits, target, valid, **options),
        scorer.score("d", logits, target, valid),
    )


def test_without_a_label_set_the_single_label_metrics_only() -> None:
    logits, target, _ = random_batch()
    with pytest.raises(Exception, match="needs a label set"):
        MultiLabelCapability(heads="multilabel", with_valid=False)
    single = MultiLabelCapability(with_valid=False)
    single.update(logits, target)
    assert list(single.compute()) == ["num_images", *(m.name for m in family("single"))]
    assert_same_metrics(single.compute(), multilabel_capability(logits, target, None))


def test_inf_and_nan_logits_are_refused_or_counted() -> None:
    """One +inf and one NaN row: compute() and the functional form refuse them, naming the
    rows; nonfinite_logits="score" scores them (NaN nll, the rows' NaN softmax) and counts
    them. Before: map_macro and map_micro moved to finite-looking numbers, silently."""
    logits, target, valid = random_batch()
    logits[3, 7] = float("inf")
    logits[11, 0] = float("nan")
    metric = MultiLabelCapability()
    metric.update(logits, target, valid)
    with pytest.raises(
        NonFiniteLogitsError, match=r"2 of 23 images hold inf and NaN \(images 3, 11,"
    ):
        metric.compute()
    with pytest.raises(NonFiniteLogitsError, match="fp16|float16"):
        multilabel_capability(logits, target, valid)
    scored = MultiLabelCapability(nonfinite_logits="score")
    scored.update(logits, target, valid)
    got = scored.compute()
    assert got["num_nonfinite"] == 2 and math.isnan(got["nll"])
    assert_same_metrics(got, multilabel_capability(logits, target, valid, nonfinite_logits="score"))
    metric.reset()  # the refused metric is usable again
    metric.update(logits.nan_to_num(posinf=0.0, nan=0.0), target, valid)
    assert "num_nonfinite" not in metric.compute()


def test_a_partial_pass_with_dataset_size_says_what_to_do() -> None:
    """Lightning's sanity check scores a few batches: with dataset_size, compute() says how
    to skip it (the metric cannot tell a sanity check from a lost image)."""
    logits, target, valid = random_batch()
    metric = MultiLabelCapability(dataset_size=100)
    metric.update(logits, target, valid)
    with pytest.raises(
        RuntimeError, match=r"trainer.sanity_checking.*give index= and no dataset_size"
    ):
        metric.compute()
    metric = MultiLabelCapability(dataset_size=10)  # and more images than the dataset
    metric.update(logits, target, valid)
    with pytest.raises(RuntimeError, match="more images than the dataset holds"):
        metric.compute()


def test_merge_state_and_load_state_dict_without_index() -> None:
    """Without index, a merged metric's images come after this one's, and updates after
    load_state_dict continue the positions (before: 'index 0 was given for two images')."""
    logits, target, valid = random_batch()
    want = multilabel_capability(logits, target, valid)
    first, second = MultiLabelCapability(), MultiLabelCapability()
    first.update(logits[:10], target[:10], valid[:10])
    second.update(logits[10:], target[10:], valid[10:])
    first.merge_state(second)
    assert_same_metrics(first.compute(), want)
    first = MultiLabelCapability()
    first.persistent(True)
    first.update(logits[:10], target[:10], valid[:10])
    loaded = MultiLabelCapability()
    loaded.persistent(True)
    loaded.load_state_dict(first.state_dict())
    loaded.update(logits[10:], target[10:], valid[10:])
    assert_same_metrics(loaded.compute(), want)
    result = loaded.compute()
    result.pop("top1")
    assert "top1" in loaded.compute()  # a fresh dict each time


# -- the user's script under DDP -----------------------------------------------------------


def main(out: str, devices: int) -> None:
    torch.set_num_threads(1)
    results, trainer = run_lightning(devices)
    Path(out).mkdir(parents=True, exist_ok=True)
    record = {**results, "world_size": trainer.world_size, "seen": trainer.lightning_module.seen}
    (Path(out) / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

"""Speed options of evaluate: the exact ones change nothing in the results, the others are
wired through (torch.compile itself is exercised in a slow test)."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from imagenet_multilabel.runs.rundir import read_predictions
from imagenet_multilabel.tasks.evaluate import evaluate


def _logits(cfg) -> np.ndarray:
    return read_predictions(Path(cfg.paths.output_dir) / "predictions" / "folder.npz")["logits"]


def _evaluate_logits(cfg) -> np.ndarray:
    """Run ``cfg`` into its own new folder (compose_cfg gives each config one) and return
    the logits that this run wrote there: no comparison can read another run's files."""
    out = Path(cfg.paths.output_dir)
    assert not out.exists(), f"{out} is not a new folder"
    evaluate(cfg)
    return _logits(cfg)


def test_normalize_on_device_changes_no_logit(compose_cfg, wnid_folder: Path) -> None:
    common = ("model=test_tiny", "data=folder", f"data.root={wnid_folder}", "batch_size=4")
    per_image = _evaluate_logits(compose_cfg(*common, "normalize_on_device=false"))
    cfg = compose_cfg(*common, "normalize_on_device=true", "num_workers=1")
    np.testing.assert_array_equal(_evaluate_logits(cfg), per_image)
    run = json.loads((Path(cfg.paths.output_dir) / "run.json").read_text())
    assert run["normalize_on_device"] is True and run["compile"] is False


def test_cpu_threads_and_compile_are_applied(compose_cfg, wnid_folder, monkeypatch) -> None:
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append(self))
    threads = torch.get_num_threads()
    try:
        cfg = compose_cfg(
            "model=test_tiny",
            "data=folder",
            f"data.root={wnid_folder}",
            "cpu_threads=1",
            "compile=true",
        )
        evaluate(cfg)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert [type(m).__name__ for m in compiled] == ["EfficientNet"]
    run = json.loads((Path(cfg.paths.output_dir) / "run.json").read_text())
    assert run["cpu_threads"] == 1 and run["compile"] is True


@pytest.mark.slow
def test_run_json_records_the_memory_format_the_model_ran_in(compose_cfg, wnid_folder) -> None:
    """channels_last=true on a model with 5-d parameters (lambda_resnet26t's), which cannot
    take channels-last: it runs contiguous, and run.json says so; a convnet runs as asked."""
    common = ("data=folder", f"data.root={wnid_folder}", "preprocess.img_size=64")
    lambda_net = ("model.name=lambda_resnet26t", "model.weights=none", "channels_last=true")
    for model, expected in ((lambda_net, False), (("model=test_tiny",), True)):
        cfg = compose_cfg(*model, *common)
        evaluate(cfg)
        run = json.loads((Path(cfg.paths.output_dir) / "run.json").read_text())
        assert run["channels_last"] is expected, model


@pytest.mark.slow
def test_compiled_backbone_agrees(compose_cfg, wnid_folder: Path) -> None:
    common = ("model=test_tiny", "data=folder", f"data.root={wnid_folder}", "batch_size=13")
    eager = _evaluate_logits(compose_cfg(*common))
    compiled = _evaluate_logits(compose_cfg(*common, "compile=true"))
    np.testing.assert_allclose(compiled, eager, atol=1e-4)


def test_batches_at_once_give_the_logits_of_one_at_a_time(compose_cfg, wnid_folder) -> None:
    common = ("model=test_tiny", "data=folder", f"data.root={wnid_folder}", "batch_size=3")
    threads = torch.get_num_threads()
    try:
        one = _evaluate_logits(compose_cfg(*common, "cpu_threads=1", "cpu_parallel=ops"))
        # 3 batches in flight on 3 threads, the last one partial (padded)
        cfg = compose_cfg(*common, "cpu_threads=3", "cpu_parallel=batches", "num_workers=1")
        at_once = _evaluate_logits(cfg)
        assert torch.get_num_threads() == 3  # the loop's 1 thread per batch is undone
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(at_once, one)
    run = json.loads((Path(cfg.paths.output_dir) / "run.json").read_text())
    assert run["cpu_threads"] == 3 and run["cpu_parallel"] == "batches"
    assert run["keep_freed_memory"] is sys.platform.startswith("linux")


def test_unknown_cpu_parallel_is_one_line(compose_cfg, wnid_folder) -> None:
    from imagenet_multilabel.checks import check_run_settings
    from imagenet_multilabel.core.errors import UserError

    cfg = compose_cfg("model=test_tiny", "data=folder", f"data.root={wnid_folder}")
    cfg.cpu_parallel = "threads"
    with pytest.raises(UserError, match="cpu_parallel must be 'batches' or 'ops'"):
        check_run_settings(cfg)  # as evaluate.py runs it, before the task


def test_an_error_in_a_forward_thread_reaches_the_caller(wnid_folder) -> None:
    import lightning as L

    from imagenet_multilabel.data.datasets.folders import WnidFolderDataset
    from imagenet_multilabel.data.loading.module import EvalDataModule
    from imagenet_multilabel.data.loading.transforms import (
        Normalize,
        eval_transform,
        resolve_preprocessing,
    )
    from imagenet_multilabel.lit.evaluation import EvaluationModule
    from imagenet_multilabel.models.backbones import create_backbone
    from imagenet_multilabel.scoring.heads import SingleLabelHead
    from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer

    model, _ = create_backbone("test_efficientnet", weights="none")
    pp = resolve_preprocessing(model)
    # the loader yields float images, the on-device Normalize wants uint8: it raises in the
    # forward thread
    data = WnidFolderDataset(wnid_folder, transform=eval_transform(pp, normalize=True))
    module = EvaluationModule(
        model,
        Scorer({"single": HeadSpec(SingleLabelHead())}),
        {"folder": len(data)},
        normalize=Normalize(pp["mean"], pp["std"]),
        parallel_batches=2,
    )
    dm = EvalDataModule({"folder": data}, {"folder": None}, batch_size=2, num_workers=0)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    threads = torch.get_num_threads()
    with pytest.raises(TypeError, match="expected uint8 images") as raised:
        trainer.validate(module, datamodule=dm, verbose=False)
    assert "forward pass of batch 0 of 'folder'" in str(raised.value.__notes__)
    assert torch.get_num_threads() == threads and module._in_flight is None


class _FirstBatchLast(torch.nn.Module):
    """A backbone whose first forward pass finishes after the next ones have."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.num_classes = model, model.num_classes
        self.lock = threading.Lock()
        self.started: list[int] = []
        self.finished: list[int] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with self.lock:
            call = len(self.started)
            self.started.append(call)
        if call == 0:
            time.sleep(1.0)
        logits = self.model(images)
        with self.lock:
            self.finished.append(call)
        return logits


def test_batches_finishing_out_of_order_are_stored_by_image(wnid_folder) -> None:
    import lightning as L

    from imagenet_multilabel.data.datasets.folders import WnidFolderDataset
    from imagenet_multilabel.data.loading.module import EvalDataModule
    from imagenet_multilabel.data.loading.transforms import eval_transform, resolve_preprocessing
    from imagenet_multilabel.lit.evaluation import EvaluationModule
    from imagenet_multilabel.models.backbones import create_backbone
    from imagenet_multilabel.scoring.heads import SingleLabelHead
    from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer

    model, _ = create_backbone("test_efficientnet", weights="none")
    data = WnidFolderDataset(wnid_folder, transform=eval_transform(resolve_preprocessing(model)))
    logits = {}
    for parallel in (1, 2):
        backbone = _FirstBatchLast(model)
        module = EvaluationModule(
            backbone,
            Scorer({"single": HeadSpec(SingleLabelHead())}),
            {"folder": len(data)},
            forward_batch_size=3,
            parallel_batches=parallel,
        )
        dm = EvalDataModule({"folder": data}, {"folder": None}, batch_size=3, num_workers=0)
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the reference on one thread too (float roundings)
        try:
            trainer.validate(module, datamodule=dm, verbose=False)
        finally:
            torch.set_num_threads(threads)
        logits[parallel] = module.results["folder"][1].logits
        if parallel > 1:  # the first batch came back after later ones (5 batches of 3)
            assert backbone.finished[0] != 0 and sorted(backbone.finished) == list(range(5))
    assert torch.equal(logits[2], logits[1])

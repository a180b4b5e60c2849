"""Speed options of evaluate: the exact ones change nothing in the results, the others are
wired through (torch.compile itself is exercised in a slow test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from imagenet_multilabel.outputs import read_predictions
from imagenet_multilabel.tasks.evaluate import evaluate


def _logits(cfg) -> np.ndarray:
    return read_predictions(Path(cfg.paths.output_dir) / "predictions" / "folder.npz")["logits"]


def test_normalize_on_device_changes_no_logit(compose_cfg, wnid_folder: Path) -> None:
    common = ("model=test_tiny", "data=folder", f"data.root={wnid_folder}", "batch_size=4")
    cfg = compose_cfg(*common, "normalize_on_device=false")
    evaluate(cfg)
    per_image = _logits(cfg)
    cfg = compose_cfg(*common, "normalize_on_device=true", "num_workers=1")
    evaluate(cfg)
    np.testing.assert_array_equal(_logits(cfg), per_image)
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
def test_compiled_backbone_agrees(compose_cfg, wnid_folder: Path) -> None:
    common = ("model=test_tiny", "data=folder", f"data.root={wnid_folder}", "batch_size=13")
    cfg = compose_cfg(*common)
    evaluate(cfg)
    eager = _logits(cfg)
    cfg = compose_cfg(*common, "compile=true")
    evaluate(cfg)
    np.testing.assert_allclose(_logits(cfg), eager, atol=1e-4)

"""Logits that hold inf or NaN are never scored as numbers: evaluate.py, train.py's
evaluation and ``score`` stop with one line and write no result; ``nonfinite_logits=score``
scores them and counts them in ``<dataset>/num_nonfinite``.

The model is a real one that overflows: timm's ``test_efficientnet`` (``model=test_tiny``)
saved as a checkpoint with finite weights, whose class-7 logit is the largest float32 plus
a feature times 1e38. Where that feature is positive (about 30 of the 100 demo photos) the
logit overflows to +inf, as a float16 forward pass overflows on a GPU; elsewhere it is finite.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import timm
import torch

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.runs.rundir import RunDir
from imagenet_multilabel.scoring.scorer import NonFiniteLogitsError
from imagenet_multilabel.tasks.evaluate import evaluate
from imagenet_multilabel.tasks.score import score
from imagenet_multilabel.tasks.train import train
from tests.helpers import ONE_THREAD, error_line, evaluate_py
from tests.tasks.train_helpers import FAST

FEATURE = 35  # a pooled feature of the seeded model, positive on about 30% of the demo photos
CLASS = 7
ARGS = ("model=test_tiny", "data=demo", "logger=none", "batch_size=16")


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory) -> Path:
    """A checkpoint of test_efficientnet whose logits overflow to inf on some images."""
    torch.manual_seed(0)
    state = timm.create_model("test_efficientnet").state_dict()
    state["classifier.weight"][CLASS] = 0.0
    state["classifier.weight"][CLASS, FEATURE] = 1e38
    state["classifier.bias"][CLASS] = torch.finfo(torch.float32).max
    assert all(bool(t.isfinite().all()) for t in state.values() if t.is_floating_point())
    path = tmp_path_factory.mktemp("model") / "overflowing.pth"
    torch.save(state, path)
    return path


LINE = re.compile(
    r"dataset '(\w+)': the logits of (\d+) of (\d+) images hold inf \(images (\d+), (\d+), "
    r"(\d+), (\d+), (\d+), \.\.\., by position in the dataset\), likely a float16 overflow"
)


@pytest.mark.slow
def test_evaluate_py_refuses_inf_logits_in_one_line_and_writes_nothing(overflowing, tmp_path):
    out = tmp_path / "run"
    proc = evaluate_py(
        *ARGS, f"model.checkpoint={overflowing}", f"hydra.run.dir={out}", env=ONE_THREAD
    )
    line = error_line(proc)
    print(line)
    assert proc.returncode == 2, proc.stderr[-2000:]
    match = LINE.search(line)
    assert match, line
    assert match[1] == "demo" and 0 < int(match[2]) < 100 and match[3] == "100"
    assert "nonfinite_logits=score" in line and "\n" not in line
    assert not (out / "metrics.json").exists() and not (out / "predictions").exists()
    assert not (out / "run.json").exists()


def test_nonfinite_logits_score_counts_them_and_score_refuses_them(
    compose_cfg, overflowing
) -> None:
    """evaluate with nonfinite_logits=score: the run is written, with num_nonfinite; its
    saved predictions re-scored by ``score``: refused by default, the same numbers with the
    option."""
    cfg = compose_cfg(*ARGS, f"model.checkpoint={overflowing}", "nonfinite_logits=score")
    metrics = evaluate(cfg)
    logits = torch.from_numpy(RunDir(cfg.paths.output_dir).predictions("demo")["logits"])
    count = int((~logits.isfinite().all(dim=1)).sum())
    assert 0 < count < 100 and bool(logits[:, CLASS].isinf().any())
    assert metrics["demo/num_nonfinite"] == count
    written = json.loads(Path(cfg.paths.output_dir, "metrics.json").read_text())
    assert written["demo/num_nonfinite"] == count and written["demo/nll"] is None  # NaN: null
    run = cfg.paths.output_dir
    with pytest.raises(NonFiniteLogitsError, match=rf"'demo': the logits of {count} of 100"):
        score(compose_cfg(f"run_dir={run}", config_name="score"))
    again = score(compose_cfg(f"run_dir={run}", "nonfinite_logits=score", config_name="score"))
    assert again["demo/num_nonfinite"] == count
    assert json.dumps(again) == json.dumps(metrics)  # NaN where NaN, bit for bit


@pytest.mark.slow
def test_train_py_stops_at_the_first_inf_in_one_line(compose_cfg, photos, overflowing) -> None:
    """train.py with the overflowing model stops at its first step (the loss check), before
    its evaluation; its evaluation scores through the scorer built with the run's
    ``nonfinite_logits`` (tasks/train.py), which refuses as evaluate.py's does."""
    cfg = compose_cfg(
        *FAST, f"data.root={photos}", f"model.checkpoint={overflowing}", config_name="train"
    )
    with pytest.raises(UserError, match="not finite"):
        train(cfg)
    assert not Path(cfg.paths.output_dir, "metrics.json").exists()

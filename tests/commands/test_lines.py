"""Lines that name what the user gave: the option that is wrong, where it is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import TINY_TRAIN, error_line, evaluate_py, train_py


def test_a_sweep_dir_that_is_a_file_is_named_hydra_sweep_dir(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    done = evaluate_py("-m", "model=test_tiny", "logger=none", f"hydra.sweep.dir={tmp_path / 'f'}")
    assert done.returncode == 2
    line = error_line(done)
    assert "hydra.sweep.dir=" in line and "hydra.run.dir" not in line


def test_evaluate_with_wandb_where_the_run_has_a_wandb_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "wandb").write_text("x")
    done = evaluate_py(
        "model=test_tiny", "logger=[csv,wandb]", "logger.wandb.offline=true", f"hydra.run.dir={run}"
    )
    assert done.returncode == 2
    assert f"{run / 'wandb'} is a file" in error_line(done)
    assert not (run / "metrics.json").exists()


@pytest.mark.slow
def test_an_optuna_search_with_a_bad_optimized_metric_ends_in_its_line(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    done = train_py(
        "hparams_search=optuna_head",
        *TINY_TRAIN,
        "optimized_metric=heldout_classes/finetuned.nope",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={tmp_path / 'search'}",
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "optimized_metric=heldout_classes/finetuned.nope: 'finetuned.nope' is not a metric" in (
        error_line(done)
    )
    assert "Traceback" not in done.stderr and "Values were told" not in done.stderr

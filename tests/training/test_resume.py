"""training/resume.py: a resumed run's CSV log continues the interrupted one's."""

from __future__ import annotations

import csv
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger

from imagenet_multilabel.training.resume import continue_csv_logs


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_resumed_csv_log_keeps_the_rows_before_the_checkpoint(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path, name="csv", version="")
    for step in range(10):
        first.log_metrics(
            {"train/loss": step / 10, **({"val/top1": 1.0} if step % 4 else {})}, step
        )
    first.save()
    path = Path(first.log_dir) / "metrics.csv"
    assert len(_rows(path)) == 10

    resumed = CSVLogger(tmp_path, name="csv", version="")
    continue_csv_logs([resumed], step=6)
    resumed.log_metrics({"train/loss": 0.6, "train/anchor": 0.1}, 6)  # a new column too
    resumed.save()
    rows = _rows(path)
    assert [int(r["step"]) for r in rows] == list(range(7))
    assert [r["train/loss"] for r in rows[:6]] == [str(s / 10) for s in range(6)]
    assert rows[1]["val/top1"] == "1.0" and rows[0]["val/top1"] == ""
    assert rows[6]["train/anchor"] == "0.1"

"""The Hydra callback that ends a multirun of evaluate.py with its leaderboard
(conf/hydra/evaluate.yaml)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from imagenet_multilabel.core.errors import one_line
from imagenet_multilabel.sweeps import dirs  # noqa: F401  (registers ${job_dirname:})

log = logging.getLogger(__name__)

# the failed jobs of the multirun that just ended, set by its callback: the command then ends
# with exit code 1 once the leaderboard is written (entry/run.py, hydra_main)
failed_jobs: list[str] = []


class LeaderboardCallback(Callback):
    """``on_multirun_end``: the sweep folder's jobs -> leaderboard.csv / .md / .json and
    figures there. Whatever goes wrong here is reported in one line and loses nothing (the
    runs are on disk: ``python -m imagenet_multilabel report <sweep dir>``)."""

    def __init__(
        self,
        sort: str | None = None,
        figures: bool = True,
        pair: list[str] | None = None,
        reference: str | None = None,
    ) -> None:
        self.sort = sort
        self.figures = figures
        self.pair = list(pair) if pair else None
        self.reference = reference

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        try:
            self._report(config, sweep)
        finally:
            failed_jobs[:] = sorted(p.parent.name for p in sweep.glob("*/failed.json"))

    def _report(self, config: DictConfig, sweep: Path) -> None:
        # imported here: Hydra loads this callback at start-up, before the config check,
        # which must not wait for torch
        from imagenet_multilabel.reports.write import write_report

        try:
            board, written = write_report(
                [sweep],
                sweep,
                sort=self.sort,
                figures=self.figures,
                pair=self.pair,
                reference=self.reference,
            )
        except Exception as e:
            print(
                f"error: no leaderboard for {sweep}: {one_line(e)} (run python -m "
                f"imagenet_multilabel report {sweep} once it is fixed)",
                file=sys.stderr,
                flush=True,
            )
            log.debug("leaderboard failed", exc_info=True)
            return
        if config.get("logger") and config.logger.get("wandb"):
            self._to_wandb(config, sweep, board, written)
        failed = sum(1 for j in board.jobs if j.status == "failed")
        print(f"leaderboard of {board.summary()}: {written[1]}", flush=True)
        if failed:
            print(
                f"warning: {failed} job(s) failed; their reasons are in {written[1]}",
                file=sys.stderr,
                flush=True,
            )

    @staticmethod
    def _to_wandb(config: DictConfig, sweep: Path, board, written: list[Path]) -> None:
        """The leaderboard and its figures as a W&B run of the sweep's group."""
        from imagenet_multilabel.tracking.logger import log_leaderboard  # as above

        node = config.logger.wandb
        try:
            log_leaderboard(
                board.records(shown_only=True),
                [p for p in written if p.suffix == ".png"],
                project=str(node.get("project") or "imagenet-multilabel"),
                group=sweep.name,
                folder=sweep,
                config={"sweep": str(sweep), "counts": board.counts(), "sort": board.sort},
                mode="offline" if node.get("offline") else None,
            )
        except Exception as e:
            print(f"error: the leaderboard did not reach W&B: {one_line(e)}", file=sys.stderr)

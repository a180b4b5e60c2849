"""The W&B run of this process, whoever opened it."""

from __future__ import annotations

import sys


def close_open_run(failed: bool) -> None:
    """Close a W&B run left open (an error before the task finished it): the next job of
    a multirun must start its own. Nothing to do where wandb was never imported."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1 if failed else 0)

"""Entry point of the ranks > 0 that Lightning starts on a node during a Hydra job:
``python -m imagenet_multilabel.rank_worker <job file>`` (see distributed.py)."""

from __future__ import annotations

import importlib
import os
import sys

from omegaconf import OmegaConf


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m imagenet_multilabel.rank_worker <job file>")
    from .cli import run_task
    from .distributed import configure_rank_logging

    job = OmegaConf.load(argv[0])
    os.chdir(job.cwd)
    configure_rank_logging(OmegaConf.to_container(job.logging) if job.logging else None)
    module, _, name = str(job.task).partition(":")
    task = importlib.import_module(module)
    for part in name.split("."):
        task = getattr(task, part)
    run_task(task, job.config)


if __name__ == "__main__":
    main(sys.argv[1:])

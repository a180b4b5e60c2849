"""Entry point of the ranks > 0 that Lightning starts on a node during a Hydra job:
``python -m imagenet_multilabel.entry.rank_worker <job file>`` (see core/distributed.py)."""

from __future__ import annotations

import os
import sys
import threading
import time

from omegaconf import OmegaConf


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m imagenet_multilabel.entry.rank_worker <job file>")
    # imported after the usage check, like everything heavy the task brings
    from imagenet_multilabel.core.distributed import configure_rank_logging
    from imagenet_multilabel.entry.run import import_task, run_task

    parent = os.getppid()
    _exit_with_parent(parent)
    job = OmegaConf.load(argv[0])
    os.chdir(job.cwd)
    configure_rank_logging(OmegaConf.to_container(job.logging) if job.logging else None)
    try:
        run_task(import_task(str(job.task)), job.config)
    except Exception:
        # rank 0 gone (it has said why): this error is a consequence (e.g. a broken pipe
        # to it, seen before the kernel gives this process its new parent)
        for _ in range(20):
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.1)
        raise


def _exit_with_parent(parent: int, period_s: float = 1.0) -> None:
    """End this rank if rank 0 (its parent) is gone, whatever ended it: no rank is left
    waiting in a collective for a process that does not exist any more."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(period_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-rank-0", daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1:])

"""What the root scripts and the commands run through, apart from the commands themselves:
``run.py`` (``run_task``: a task under Hydra with one-line errors, exit codes, SIGTERM and
DDP ranks; ``hydra_main``: Hydra's own errors in one line) and ``rank_worker.py`` (the
process of a DDP rank > 0, started by ``core/distributed.py``)."""

"""What a run prints, once: Lightning's lines through the run's own handlers (not also
through the console handler Lightning adds when it is imported), its hints that do not
concern a user of this package dropped, and an error the entry point prints as
``error: ...`` kept in the log file without a second copy on the console."""

from __future__ import annotations

import logging
import re
import warnings

# Lightning's hints that concern no user of this package: tips to install other packages
# (printed on every run), and the srun hint, which Lightning gives wherever `srun` exists
# although this package starts SLURM jobs itself (conf/hydra/launcher/)
IRRELEVANT = (
    r"💡 Tip: For seamless cloud",
    r"The `srun` command is available on your system but is not used",
)
_IRRELEVANT = re.compile("|".join(IRRELEVANT))


class _DropIrrelevant(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _IRRELEVANT.search(record.getMessage())


_drop = _DropIrrelevant()


def quiet_lightning() -> None:
    """Lightning's log lines once, and without its irrelevant hints. Importing
    ``lightning`` adds a console handler (``INFO: ...``) to its logger, which also
    propagates to the root logger's handlers (Hydra's console and log file): every INFO
    line twice. Where the root logger has handlers, Lightning's own are removed."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logger = logging.getLogger(name)
        if _drop not in logger.filters:
            logger.addFilter(_drop)
        if logging.getLogger().handlers:
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:
                    logger.removeHandler(handler)
            logger.propagate = True
    for rank_zero in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
    ):
        logger = logging.getLogger(rank_zero)
        if _drop not in logger.filters:
            logger.addFilter(_drop)
    for hint in IRRELEVANT:
        warnings.filterwarnings("ignore", message=f".*{hint}")


def log_to_files(logger: logging.Logger, level: int, message: str) -> None:
    """``message`` into the log files only (the handlers of ``logger`` and its parents that
    write a file): for a line the caller prints itself."""
    record = logger.makeRecord(logger.name, level, "", 0, message, (), None)
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
                handler.handle(record)
        current = current.parent if current.propagate else None

"""One directory per sweep job, named by the job's overrides (not by its position in the
sweep), so that a re-run of a sweep, with models or datasets added, finds each job's
earlier results: ``hydra.sweep.subdir: ${job_dirname:${hydra.job.override_dirname}}``
(conf/hydra/evaluate.yaml; output plumbing, which changes no result, is left out by
``hydra.job.config.override_dirname.exclude_keys``: :func:`plumbing_keys`, which a job's
identity leaves out too, sweeps/planning.py)."""

from __future__ import annotations

import functools
import hashlib
import re

from omegaconf import OmegaConf

from imagenet_multilabel.core.config import config_option

MAX_NAME = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+@-]")


def job_dirname(override_dirname: str | None) -> str:
    """A folder name for a job's ``hydra.job.override_dirname``: as it is where it is a safe
    name (``data=demo,model=test_tiny``); else with unsafe characters replaced (``/`` of
    paths) and a short hash of the original, so that two jobs never share a folder."""
    raw = str(override_dirname or "")
    if not raw:
        return "default"
    name = _UNSAFE.sub("_", raw).strip(".")
    if name == raw and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{digest}"


@functools.cache
def plumbing_keys() -> tuple[str, ...]:
    """The config keys of output plumbing (loggers, callbacks, the decode cache, the
    progress bar): they change no result, so they name no job folder and are no part of a
    job's identity. Kept in one list: conf/hydra/evaluate.yaml's
    ``hydra.job.config.override_dirname.exclude_keys``."""
    hydra = config_option("hydra", "evaluate")
    return tuple(str(k) for k in hydra.job.config.override_dirname.exclude_keys)


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)


register_resolvers()  # on import: Hydra resolves hydra.sweep.subdir in each job

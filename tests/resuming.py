"""Resume as a property: a fine-tuning run interrupted by a real signal (SIGKILL, SIGINT,
SIGTERM sent by the process to itself) at a chosen moment, resumed with ``ckpt_path=last``,
compared bit for bit with the uninterrupted run (metrics, logits, best and last
checkpoints). Used by tests/tasks/test_resume_property.py and benchmarks/resume_kill.py.

Each run is a child forked from a fork server (multiprocessing's ``forkserver``) that has
imported torch, Lightning and the package once and has run nothing: the interruption is
real (the child dies of the signal, or ends through the command's own handler, exit 130 /
143), without paying Python's start-up per interruption. The children are never forked
from the calling process itself: a process whose thread pools ran (a pytest worker, after
other tests) forks children that can hang on their locks.
"""

from __future__ import annotations

import faulthandler
import json
import math
import multiprocessing
import os
import signal as signal_module
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from imagenet_multilabel.entry.run import run_task
from imagenet_multilabel.tasks.train import train
from tests.helpers import demo_folder, demo_photos

MOMENTS = ("step", "epoch_end", "validation", "save")


def _small_photos(count: int = 40) -> Path:
    """A folder of links to the first ``count`` demo photos (made once per machine and
    user, in the temp folder): the final scoring of every run reads each photo, and 40
    hold the 20 held-out classes and 20 trained ones."""
    folder = Path(tempfile.gettempdir()) / f"imagenet-ml-resume-photos-{count}-{os.getuid()}"
    return demo_folder(folder, demo_photos()[:count])


# the small full fine-tuning that is interrupted: 4 optimizer steps an epoch, last.ckpt
# every 2 (the test and benchmarks/resume_kill.py add the number of epochs)
STEPS_PER_EPOCH, EVERY_N = 4, 2
SMALL_RUN = (
    "model=test_tiny",
    f"data.root={_small_photos()}",
    "finetune.mode=full",
    "loss=soft_ce",
    "logger=none",
    "batch_size=4",
    f"train_batch_size={16 // STEPS_PER_EPOCH}",
    "composites.train_images=16",
    "composites.eval_images=4",
    "split.heldout_classes=20",
    f"checkpoint.every_n_steps={EVERY_N}",
)


class SignalAtMoment(L.Callback):
    """``signal`` to this process once, at ``moment``: ``step`` (right after optimizer step
    ``at``, before that step's checkpoint), ``epoch_end`` (the end of epoch ``at``, after its
    validation), ``validation`` (after the first batch of the validation that ends epoch
    ``at``), ``save`` (inside the first checkpoint save after step ``at``, before its file
    is written)."""

    def __init__(self, moment: str, at: int, signal: str = "SIGKILL") -> None:
        if moment not in MOMENTS:
            raise ValueError(f"moment {moment!r}: one of {', '.join(MOMENTS)}")
        self.moment, self.at, self.signum = moment, int(at), getattr(signal_module, signal)
        self.sent = False

    def _send(self, trainer: L.Trainer, moment: str, now: bool) -> None:
        if moment == self.moment and now and not self.sent and trainer.state.fn == "fit":
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_train_batch_end(self, trainer, *_) -> None:
        self._send(trainer, "step", trainer.global_step == self.at)

    def on_train_epoch_end(self, trainer, *_) -> None:
        self._send(trainer, "epoch_end", trainer.current_epoch == self.at)

    def on_validation_batch_end(self, trainer, *_) -> None:
        self._send(trainer, "validation", trainer.current_epoch == self.at)

    def on_save_checkpoint(self, trainer, *_) -> None:
        self._send(trainer, "save", trainer.global_step >= self.at)


@dataclass(frozen=True)
class Interruption:
    moment: str
    at: int
    signal: str = "SIGKILL"

    def __str__(self) -> str:
        return f"{self.signal} {self.moment} {self.at}"


def with_interruption(cfg: DictConfig, interruption: Interruption | None) -> DictConfig:
    with open_dict(cfg):
        cfg.callbacks = dict(cfg.get("callbacks") or {})
        if interruption is not None:
            cfg.callbacks["interrupt"] = {
                "_target_": "tests.resuming.SignalAtMoment",
                "moment": interruption.moment,
                "at": interruption.at,
                "signal": interruption.signal,
            }
    return cfg


# the fork server imports this module (and so torch, Lightning, the package) once
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload([__name__])


def _exit_code(process: multiprocessing.process.BaseProcess) -> int:
    process.join()
    return int(process.exitcode if process.exitcode is not None else 1)


def _train_child(cfg: DictConfig, log: Path, timeout: float) -> None:
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        faulthandler.dump_traceback_later(timeout, exit=False, file=sys.stderr)
        threading.Timer(timeout + 1, os._exit, (70,)).start()
        if "hydra" in cfg:  # as the command's Hydra sets it
            HydraConfig.instance().set_config(cfg)
        run_task(train, cfg, trainer=True)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback  # only a child that failed prints its traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def forked_train(cfg: DictConfig, log: Path, timeout: float = 600) -> int:
    """``train.py``'s task on ``cfg`` in a forked child, as the command runs it (its
    one-line errors and signal handling): the child's exit code, or -N when signal N
    ended it. Its output goes to ``log``; a child still running after ``timeout`` seconds
    writes its threads' stacks there and ends with exit code 70."""
    child = _FORKS.Process(target=_train_child, args=(cfg, log, timeout))
    child.start()
    return _exit_code(child)


def equal(a: object, b: object) -> bool:
    """Bit for bit (NaN equal to NaN)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


# what a checkpoint holds of the training (callbacks' paths and timings aside)
CKPT_KEYS = ("epoch", "global_step", "state_dict", "optimizer_states", "lr_schedulers", "loops")


def _progress(loops: object) -> object:
    """A checkpoint's loop states without Lightning's counters of ``ready``/``started``
    batches, which a restart counts again."""
    if not isinstance(loops, dict):
        return loops
    return {
        k: _progress(v) if isinstance(v, dict) else v
        for k, v in loops.items()
        if isinstance(v, dict) or k in ("completed", "processed")
    }


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _differences_child(whole: Path, resumed: Path, out: Path) -> None:
    code = 0
    try:
        out.write_text(json.dumps(_differences(whole, resumed)))
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def differences(whole: Path, resumed: Path) -> list[str]:
    """What differs between two finished runs: metrics (how many), logits (which sets),
    best/last checkpoint parts; empty when they are the same bit for bit. Compared in a
    child of the fork server, so that the calling process runs no torch computation."""
    out = resumed.with_name(resumed.name + ".differences.json")
    out.unlink(missing_ok=True)
    child = _FORKS.Process(target=_differences_child, args=(whole, resumed, out))
    child.start()
    if _exit_code(child) != 0 or not out.is_file():
        return ["comparison failed"]
    return json.loads(out.read_text())


def _differences(whole: Path, resumed: Path) -> list[str]:
    if not (resumed / "metrics.json").is_file():
        return ["no metrics.json"]
    out = []
    ma = json.loads((whole / "metrics.json").read_text())
    mb = json.loads((resumed / "metrics.json").read_text())
    bad = [k for k in ma if not equal(ma[k], mb.get(k))]
    if bad or ma.keys() != mb.keys():
        out.append(f"{len(bad)} of {len(ma)} metrics")
    for path in sorted((whole / "predictions").glob("*.npz")):
        other = resumed / "predictions" / path.name
        if not other.is_file():
            out.append(f"{path.name} missing")
            continue
        with np.load(path) as a, np.load(other) as b:
            if not equal(a["logits"], b["logits"]):
                out.append(f"{path.name} logits")
    for name in ("last.ckpt", "best.ckpt"):
        a, b = (
            _checkpoint(whole / "checkpoints" / name),
            _checkpoint(resumed / "checkpoints" / name),
        )
        for key in CKPT_KEYS:
            pick = _progress if key == "loops" else (lambda x: x)
            if not equal(pick(a.get(key)), pick(b.get(key))):
                out.append(f"{name}:{key}")
    return out


def interrupt_and_resume(
    compose: Callable[..., DictConfig], out: Path, interruption: Interruption
) -> tuple[int, int, bool]:
    """A run into ``out`` interrupted by ``interruption``, then resumed with
    ``ckpt_path=last``, or run again from the start where it was interrupted before its
    first checkpoint: (the interrupted run's exit code, the second run's, whether the
    interrupted run had saved a checkpoint)."""
    log = out.with_suffix(".log")
    cfg = with_interruption(compose(), interruption)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    first = forked_train(cfg, log)
    saved = (out / "checkpoints" / "last.ckpt").is_file()
    cfg = with_interruption(compose(*(["ckpt_path=last"] if saved else [])), None)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return first, forked_train(cfg, log), saved


def every_moment(steps_per_epoch: int, epochs: int, every_n_steps: int) -> Iterator[Interruption]:
    """kill -9 after every optimizer step, at every epoch's end, inside every epoch's
    validation and inside every checkpoint save."""
    total = steps_per_epoch * epochs
    for k in range(1, total + 1):
        yield Interruption("step", k)
    for e in range(epochs):
        yield Interruption("epoch_end", e)
        yield Interruption("validation", e)
    for k in range(every_n_steps, total + 1, every_n_steps):
        yield Interruption("save", k)

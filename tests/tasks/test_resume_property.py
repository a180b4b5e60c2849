"""Resume as a property: a small full fine-tuning run interrupted by a real signal at a
moment drawn at random among all of them (after any optimizer step, at an epoch's end,
inside a validation, inside a checkpoint save), for each checkpoint.monitor and schedule,
then resumed with ``ckpt_path=last``, equals the uninterrupted run bit for bit (metrics,
logits, best.ckpt, last.ckpt). benchmarks/resume_kill.py interrupts at every moment."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from imagenet_multilabel.core.checkpoints import previous_checkpoint
from imagenet_multilabel.core.errors import UserError
from tests.resuming import (
    EVERY_N,
    SMALL_RUN,
    STEPS_PER_EPOCH,
    Interruption,
    differences,
    every_moment,
    forked_train,
    interrupt_and_resume,
    with_interruption,
)

EPOCHS = 2
TINY = (*SMALL_RUN, f"trainer.max_epochs={EPOCHS}")
# the moments of a case: drawn anew each run (the seed is in the test's output)
SEED = int(os.environ.get("RESUME_SEED", random.randrange(10**6)))


def _runner(compose_cfg, *common: str):
    def make(*more: str):
        return with_interruption(compose_cfg(*TINY, *common, *more, config_name="train"), None)

    return make


def _run(make, out: Path, *more: str, interruption: Interruption | None = None) -> int:
    cfg = with_interruption(make(*more), interruption)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return forked_train(cfg, out.with_suffix(".log"))


@pytest.mark.slow
@pytest.mark.parametrize("sched", ["constant", "cosine"])
@pytest.mark.parametrize("monitor", ["auto", "heldout_classes/top1", "null"])
def test_a_run_interrupted_anywhere_resumes_bit_for_bit(compose_cfg, tmp_path, monitor, sched):
    make = _runner(compose_cfg, f"checkpoint.monitor={monitor}", f"sched={sched}")
    whole = tmp_path / "whole"
    assert _run(make, whole) == 0, whole.with_suffix(".log").read_text()[-2000:]
    moments = list(every_moment(STEPS_PER_EPOCH, EPOCHS, EVERY_N))
    draw = random.Random(f"{SEED}{monitor}{sched}")
    cases = draw.sample(moments, 2)
    signal = draw.choice(["SIGINT", "SIGTERM"])
    m = draw.choice(moments)
    cases.append(Interruption(m.moment, m.at, signal))
    for case in cases:
        out = tmp_path / f"{case.signal}-{case.moment}-{case.at}"
        first, second, saved = interrupt_and_resume(make, out, case)
        expected = {"SIGKILL": -9, "SIGINT": 130, "SIGTERM": 143}[case.signal]
        assert first in (expected, 0), (case, first)  # 0: a signal after the last moment
        log = out.with_suffix(".log").read_text()
        assert second == 0, (case, log[-2000:])
        if first in (130, 143):  # the line says how to resume, where there is a checkpoint
            line = next(ln for ln in log.splitlines() if ln.startswith("error: interrupted"))
            assert ("hydra.run.dir=" in line and "ckpt_path=last" in line) == saved, line
        assert differences(whole, out) == [], (f"RESUME_SEED={SEED}", case)
        # resuming the finished run changes nothing (the same global step)
        assert _run(make, out, "ckpt_path=last") == 0
        assert differences(whole, out) == [], (f"RESUME_SEED={SEED}", case, "again")


@pytest.mark.slow
def test_resuming_from_the_previous_checkpoint_is_exact(compose_cfg, tmp_path) -> None:
    make = _runner(compose_cfg, "checkpoint.monitor=auto", "sched=cosine")
    whole = tmp_path / "whole"
    assert _run(make, whole) == 0
    out = tmp_path / "killed"
    assert _run(make, out, interruption=Interruption("step", 5)) == -9
    last = out / "checkpoints" / "last.ckpt"
    prev = previous_checkpoint(last)
    assert torch.load(prev, weights_only=True)["global_step"] == 2  # last.ckpt is step 4's
    last.write_bytes(last.read_bytes()[:1000])  # damaged, as by a kill inside its write
    assert _run(make, out, f"ckpt_path={prev}") == 0
    assert differences(whole, out) == []


def test_a_longer_resume_of_a_decaying_schedule_is_refused(compose_cfg, tmp_path) -> None:
    from imagenet_multilabel.tasks.train import train

    cfg = compose_cfg(*TINY, "trainer.max_epochs=1", "sched=cosine", config_name="train")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    again = compose_cfg(
        *TINY, "trainer.max_epochs=2", "sched=cosine", "ckpt_path=last", config_name="train"
    )
    with open_dict(again):
        again.paths.output_dir = str(out)
    with pytest.raises(UserError, match=r"planned with trainer.max_epochs=1 and its cosine"):
        train(again)
    shutil.rmtree(out)

"""Resume as a property, exhaustively: a small full fine-tuning run interrupted at every
moment (kill -9 right after every optimizer step, at every epoch's end, inside every
validation and every checkpoint save; SIGINT and SIGTERM at a sample of them), for each
``checkpoint.monitor`` (auto, a metric, null) and schedule (constant, cosine), resumed
with ``ckpt_path=last`` and compared bit for bit with the uninterrupted run (metrics.json,
the logits of every set, best.ckpt and last.ckpt: weights, optimizer, schedule, loop
position). Then: a resume of the finished run changes nothing, and a run resumed from
``last.prev.ckpt`` (the previous checkpoint) is exact as well. Each run is forked from this
process (tests/resuming.py): the signal is real, Python and torch start once.

    python benchmarks/resume_kill.py [--monitors auto,heldout_seen/top1,null]
        [--scheds constant,cosine] [--epochs 3] [--signals SIGKILL,SIGINT,SIGTERM] [--keep DIR]

Prints one markdown row per (monitor, schedule, moment kind, signal): interruptions made,
how many were bit for bit. tests/tasks/test_resume_property.py runs a smaller version.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from imagenet_multilabel.core.config import CONFIG_DIR  # noqa: E402
from tests.resuming import (  # noqa: E402
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

SETTINGS = (*SMALL_RUN, "num_workers=0", "trainer.enable_progress_bar=false")


def composer(*common: str):
    def _compose(*more: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[*SETTINGS, *common, *more], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            cfg.callbacks = {}
        return cfg

    return _compose


def uninterrupted(make, out: Path) -> int:
    cfg = with_interruption(make(), None)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return forked_train(cfg, out.with_suffix(".log"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", default="auto,heldout_seen/top1,null")
    parser.add_argument("--scheds", default="constant,cosine")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--signals", default="SIGKILL,SIGINT,SIGTERM")
    parser.add_argument("--moments", default="step,epoch_end,validation,save")
    parser.add_argument("--keep", type=Path)
    opts = parser.parse_args()
    tmp = opts.keep or Path(tempfile.mkdtemp(prefix="resume_kill-"))
    tmp.mkdir(parents=True, exist_ok=True)
    signals = opts.signals.split(",")
    print("| monitor | sched | moment | signal | interruptions | bit for bit | not (first) |")
    print("|---|---|---|---|---|---|---|")
    failures = 0
    for monitor in opts.monitors.split(","):
        for sched in opts.scheds.split(","):
            t0 = time.perf_counter()
            common = (
                f"checkpoint.monitor={monitor}",
                f"sched={sched}",
                f"trainer.max_epochs={opts.epochs}",
            )
            make = composer(*common)
            tag = f"{monitor.replace('/', '_')}-{sched}"
            whole = tmp / f"{tag}-whole"
            if uninterrupted(make, whole) != 0:
                print(f"| {monitor} | {sched} | - | - | uninterrupted run failed: {whole}.log |")
                failures += 1
                continue
            rows: dict = collections.defaultdict(lambda: [0, 0, ""])
            moments = [
                m
                for m in every_moment(STEPS_PER_EPOCH, opts.epochs, EVERY_N)
                if m.moment in opts.moments.split(",")
            ]
            cases = [m for m in moments]
            # SIGINT and SIGTERM: every third moment
            for s in signals:
                if s != "SIGKILL":
                    cases += [Interruption(m.moment, m.at, s) for m in moments[::3]]
            if "SIGKILL" not in signals:
                cases = [c for c in cases if c.signal != "SIGKILL"]
            for case in cases:
                out = tmp / f"{tag}-{case.signal}-{case.moment}-{case.at}"
                shutil.rmtree(out, ignore_errors=True)
                first, resumed, _ = interrupt_and_resume(make, out, case)
                diff = differences(whole, out)
                if not diff:  # resuming the finished run again changes nothing
                    again = forked_train(
                        with_interruption(_at(make("ckpt_path=last"), out), None),
                        out.with_suffix(".log"),
                    )
                    diff = (
                        [f"resume of the finished run: exit {again}"]
                        if again
                        else [f"finished run resumed: {d}" for d in differences(whole, out)]
                    )
                print(f"<!-- {tag} {case}: {', '.join(diff) or 'bit for bit'} -->", flush=True)
                row = rows[(case.moment, case.signal)]
                row[0] += 1
                row[1] += not diff
                if diff and not row[2]:
                    row[2] = f"{case.at} (exit {first}, {resumed}): {', '.join(diff)}"
            for (moment, sig), (n, good, first_bad) in rows.items():
                failures += n - good
                print(
                    f"| {monitor} | {sched} | {moment} | {sig} | {n} | {good} | {first_bad} |",
                    flush=True,
                )
            print(f"<!-- {tag}: {time.perf_counter() - t0:.0f} s -->", flush=True)
    print(f"\n{failures} interruption(s) not bit for bit; runs in {tmp}")
    raise SystemExit(1 if failures else 0)


def _at(cfg, out: Path):
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


if __name__ == "__main__":
    main()

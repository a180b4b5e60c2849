"""Resume after ``kill -9``, compared bit for bit with the uninterrupted run.

For each ``checkpoint.monitor`` (auto, null) and schedule (constant, cosine): one
uninterrupted ``train.py`` run, then for each moment (mid-epoch after a training batch,
inside a checkpoint save, during validation) a run killed there with SIGKILL (a callback,
tests/interrupting.py:KillAt) and resumed with ``ckpt_path=last``; the resumed run's
metrics.json, last.ckpt and best.ckpt (weights, optimizer, schedule, loop position) must
equal the uninterrupted run's exactly. A second resume of the finished run must change
nothing. Prints one markdown row per case.

    python benchmarks/resume_kill.py [--monitors auto,null] [--scheds constant,cosine]
        [--moments train,save,validation] [--keep DIR]

Tiny: model=test_tiny, 40 composites, batches of 8 (5 steps an epoch), 3 epochs;
about 10 minutes on 2 cores for the 12 cases.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402

SETTINGS = (
    "model=test_tiny",
    "logger=none",
    "batch_size=8",
    "train_batch_size=8",
    "composites.train_images=40",
    "composites.eval_images=8",
    "split.heldout_classes=20",
    "trainer.max_epochs=3",
)
# the kill: after step 7 (mid-epoch 2 of 5 steps), in the save after step 10 (end of
# epoch 2), in the validation after step 10
STEP = {"train": 7, "save": 10, "validation": 10}


def run(args: list[str], out: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *SETTINGS, *args, f"hydra.run.dir={out}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


# what a checkpoint holds of the training (callbacks' paths and timings aside)
CKPT_KEYS = ("epoch", "global_step", "state_dict", "optimizer_states", "lr_schedulers", "loops")


def differences(whole: Path, resumed: Path) -> list[str]:
    """What differs between two finished runs: metrics (count), checkpoint parts."""
    out = []
    ma = json.loads((whole / "metrics.json").read_text())
    mb = json.loads((resumed / "metrics.json").read_text())
    bad = [k for k in ma if not _equal(ma[k], mb.get(k))]
    if bad or ma.keys() != mb.keys():
        out.append(f"{len(bad)} of {len(ma)} metrics")
    for name in ("last.ckpt", "best.ckpt"):
        a = torch.load(whole / "checkpoints" / name, map_location="cpu", weights_only=True)
        b = torch.load(resumed / "checkpoints" / name, map_location="cpu", weights_only=True)
        for key in CKPT_KEYS:
            if key == "loops":  # the loops' counters, without timings
                same = _equal(_progress(a.get(key)), _progress(b.get(key)))
            else:
                same = _equal(a.get(key), b.get(key))
            if not same:
                out.append(f"{name}:{key}")
    return out


def _progress(loops: object) -> object:
    """A checkpoint's loop states without what depends on where it was interrupted:
    Lightning's counters of ``ready``/``started`` batches that a restart re-counts."""
    if not isinstance(loops, dict):
        return loops
    keep = {}
    for k, v in loops.items():
        if isinstance(v, dict):
            keep[k] = _progress(v)
        elif k in ("completed", "processed"):
            keep[k] = v
    return keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", default="auto,null")
    parser.add_argument("--scheds", default="constant,cosine")
    parser.add_argument("--moments", default="train,save,validation")
    parser.add_argument("--keep", type=Path)
    opts = parser.parse_args()
    tmp = opts.keep or Path(tempfile.mkdtemp(prefix="resume_kill-"))
    print(
        "| monitor | sched | kill -9 at | killed (exit) | resumed (exit) | same as uninterrupted "
        "| resume of the finished run | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    failures = 0
    for monitor in opts.monitors.split(","):
        for sched in opts.scheds.split(","):
            common = [f"checkpoint.monitor={monitor}", f"sched={sched}"]
            whole = tmp / f"{monitor}-{sched}-whole"
            done = run(common, whole)
            if done.returncode != 0:
                print(
                    f"| {monitor} | {sched} | - | uninterrupted run failed: "
                    f"{done.stderr.strip().splitlines()[-1:]} |"
                )
                failures += 1
                continue
            for moment in opts.moments.split(","):
                t0 = time.perf_counter()
                out = tmp / f"{monitor}-{sched}-{moment}"
                kill = [
                    "+callbacks.kill._target_=tests.interrupting.KillAt",
                    f"+callbacks.kill.moment={moment}",
                    f"+callbacks.kill.step={STEP[moment]}",
                ]
                killed = run(common + kill, out)
                resumed = run([*common, "ckpt_path=last"], out)
                diff = differences(whole, out) if resumed.returncode == 0 else ["no result"]
                # resuming the finished run again changes nothing
                before = (out / "metrics.json").read_bytes() if resumed.returncode == 0 else b""
                again = run([*common, "ckpt_path=last"], out)
                same_again = (
                    again.returncode == 0
                    and not differences(whole, out)
                    and json.loads((out / "metrics.json").read_bytes()) == json.loads(before)
                )
                ok = killed.returncode == -9 and not diff and same_again
                failures += not ok
                print(
                    f"| {monitor} | {sched} | {moment} (step {STEP[moment]}) | "
                    f"{killed.returncode} | {resumed.returncode} | "
                    f"{'bit for bit' if not diff else 'DIFFERS: ' + ', '.join(diff)} | "
                    f"{'unchanged' if same_again else 'CHANGED'} | "
                    f"{time.perf_counter() - t0:.0f} |",
                    flush=True,
                )
    print(f"\n{failures} case(s) not bit for bit; runs in {tmp}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()

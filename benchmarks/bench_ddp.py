"""Images/s of an evaluation on 1 vs N DDP processes, printed side by side.

    python benchmarks/bench_ddp.py                          # CPU here: 1 vs 2 processes (gloo)
    python benchmarks/bench_ddp.py --devices 1 8            # one node with 8 GPUs
    python benchmarks/bench_ddp.py --images 200 --model test_tiny -- batch_size=32

Each setting runs ``evaluate.py trainer=ddp trainer.accelerator=auto trainer.devices=N`` on
real photos (default: the shared ImageNet sample) as its own command. "images/s" counts
from the start of validation, all ranks up, to its end, gathering and metrics included
(a callback, after a barrier); process start-up and model loading are left out and
shown apart ("wall s": the whole command). The metrics of the runs are compared too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # measure this checkout, not an installed copy

from imagenet_multilabel.runs.rundir import RunDir  # noqa: E402


class EvalTimer(L.Callback):
    """Seconds from validation start to validation end on rank 0, all ranks synchronised."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.start = 0.0

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.strategy.barrier("bench_start")
        self.start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.strategy.barrier("bench_end")
        seconds = time.perf_counter() - self.start
        if trainer.is_global_zero:
            Path(self.out).write_text(json.dumps({"seconds": seconds}))


def _photos(source: Path, limit: int | None, into: Path) -> Path:
    files = sorted(p for p in source.iterdir() if p.suffix.upper() == ".JPEG")[:limit]
    into.mkdir(parents=True, exist_ok=True)
    for f in files:
        (into / f.name).symlink_to(f.resolve())
    return into


def run(devices: int, data: Path, out: Path, args: argparse.Namespace) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p
            for p in (str(REPO / "src"), str(REPO / "benchmarks"), os.environ.get("PYTHONPATH"))
            if p
        ),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
    }
    command = [
        sys.executable,
        str(REPO / "evaluate.py"),
        "trainer=ddp",
        f"trainer.accelerator={args.accelerator}",
        f"trainer.devices={devices}",
        f"model={args.model}",
        f"data.root={data}",
        f"num_workers={args.num_workers}",
        f"batch_size={args.batch_size}",
        "callbacks=none",
        "logger=none",
        "+callbacks.bench._target_=bench_ddp.EvalTimer",
        f"+callbacks.bench.out={out / 'bench.json'}",
        f"hydra.run.dir={out}",
        *args.overrides,
    ]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"devices={devices} failed:\n{proc.stderr[-3000:]}")
    _, metrics = RunDir(out).dataset_metrics()
    run_info = json.loads((out / "run.json").read_text())
    seconds = json.loads((out / "bench.json").read_text())["seconds"]
    return {
        "devices": devices,
        "device": run_info["host"].get("gpu") or f"CPU, {run_info['host']['cpu_count']} cores",
        "threads": run_info["host"]["torch_threads"],
        "images": metrics["num_images"],
        "seconds": seconds,
        "images_per_s": metrics["num_images"] / seconds,
        "wall": wall,
        "metrics": metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/imagenet-sample")
    parser.add_argument("--images", type=int, default=None, help="first N photos only")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers per rank")
    parser.add_argument("overrides", nargs="*", help="more evaluate.py overrides (after --)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        data = _photos(args.data, args.images, Path(tmp) / "photos")
        results = [run(n, data, Path(tmp) / f"run{n}", args) for n in args.devices]

    base = results[0]["images_per_s"]
    print(
        f"{args.model}, {results[0]['images']} photos, batch {args.batch_size}, "
        f"{args.num_workers} workers/rank, {results[0]['device']}"
    )
    print(
        f"{'processes':>9} {'threads/proc':>12} {'images/s':>9} {'speed-up':>8} "
        f"{'eval s':>7} {'wall s':>7}  metrics"
    )
    for r in results:
        same = "identical" if r["metrics"] == results[0]["metrics"] else "DIFFER"
        print(
            f"{r['devices']:>9} {r['threads']!s:>12} {r['images_per_s']:>9.1f} "
            f"{r['images_per_s'] / base:>7.2f}x {r['seconds']:>7.1f} {r['wall']:>7.1f}  {same}"
        )


if __name__ == "__main__":
    main()

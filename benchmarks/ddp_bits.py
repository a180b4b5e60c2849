"""How far the logits of N DDP processes are from those of one process, bit for bit.

    python benchmarks/ddp_bits.py                     # 37 sample photos, batch_size=5, 1/2/3
    python benchmarks/ddp_bits.py --models test_tiny tf_efficientnet_lite0 --images 37

For each model, one multirun ``evaluate.py -m trainer=ddp trainer.accelerator=cpu
trainer.devices=1,2,3`` on real photos (default: the shared ImageNet sample, else set
IMAGENET_ML_SAMPLE) with a small batch size that leaves a partial last batch; prints per
world size the largest |logit difference| to one process, how many images differ, and the
metrics that differ. Every process gets OMP_NUM_THREADS=1 (docs/distributed.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import REPO, RunDir, sample_photos, wnid_folders


def sweep(model: str, data: Path, out: Path, args: argparse.Namespace) -> dict[int, RunDir]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        str(REPO / "evaluate.py"),
        "-m",
        f"model={model}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        f"trainer.devices={','.join(map(str, args.devices))}",
        "data=folder",
        f"data.root={data}",
        f"batch_size={args.batch_size}",
        "num_workers=0",
        "callbacks=none",
        "logger=none",
        f"hydra.sweep.dir={out}",
    ]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{model}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    runs = {}
    for job in out.iterdir():
        if (job / "run.json").is_file():
            run = RunDir(job)
            runs[json.loads((job / "run.json").read_text())["trainer"]["world_size"]] = run
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["test_tiny", "tf_efficientnet_lite0"])
    parser.add_argument("--images", type=int, default=37)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = wnid_folders(sample_photos(args.images), Path(tmp) / "val")
        print(f"{args.images} photos, batch_size={args.batch_size}, processes {args.devices}")
        for model in args.models:
            runs = sweep(model, data, Path(tmp) / model, args)
            base = runs[args.devices[0]]
            logits0, metrics0 = base.predictions("folder")["logits"], base.metrics["folder"]
            for world in args.devices[1:]:
                logits = runs[world].predictions("folder")["logits"]
                diff = np.abs(logits.astype(np.float64) - logits0)
                differ = [
                    k
                    for k, v in runs[world].metrics["folder"].items()
                    if v != metrics0[k] and not (v != v and metrics0[k] != metrics0[k])
                ]
                print(
                    f"{model:24s} {world} vs {args.devices[0]} processes: max |logit diff| "
                    f"{diff.max():.3g}, images differing {int((diff.max(1) > 0).sum())}"
                    f"/{len(diff)}, metrics differing: {', '.join(differ) or 'none'}"
                )


if __name__ == "__main__":
    main()

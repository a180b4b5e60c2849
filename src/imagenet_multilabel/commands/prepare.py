"""Command line: get datasets ready.

python -m imagenet_multilabel prepare imagenetv2 --variant matched-frequency --root DIR
python -m imagenet_multilabel prepare imagenet_a --root DIR        # also imagenet_r
python -m imagenet_multilabel prepare imagenet_sketch --root DIR
python -m imagenet_multilabel prepare imagenet_c --root DIR [--set noise ...]
python -m imagenet_multilabel prepare imagenet --root /path/to/val [--devkit DIR]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from imagenet_multilabel.core.errors import UserError, one_line
from imagenet_multilabel.data.datasets.imagenet_c import RELEASED
from imagenet_multilabel.data.prepare import (
    ARCHIVES,
    IMAGENET_C_ARCHIVES,
    IMAGENET_HOWTO,
    IMAGENETV2_ARCHIVES,
    check_imagenet,
    checksum_note,
    prepare_archive,
    prepare_imagenet_c,
    prepare_imagenetv2,
)

TITLES = {
    "imagenet_a": "ImageNet-A",
    "imagenet_r": "ImageNet-R",
    "imagenet_sketch": "ImageNet-Sketch",
}


def _download_args(parser: argparse.ArgumentParser, archive_help: str) -> None:
    parser.add_argument("--root", required=True, help="folder to put the dataset in")
    parser.add_argument("--url", help="download from this URL instead (no checksum check)")
    parser.add_argument("--archive", help=archive_help)
    parser.add_argument("--keep-archive", action="store_true", help="keep the archive")
    parser.add_argument("--timeout", type=float, default=15.0, help="network timeout, seconds")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m imagenet_multilabel prepare")
    sub = parser.add_subparsers(dest="dataset", required=True)
    v2 = sub.add_parser("imagenetv2", help="download, verify and extract ImageNetV2")
    _download_args(v2, "use this already downloaded .tar.gz instead")
    v2.add_argument("--variant", default="matched-frequency", choices=list(IMAGENETV2_ARCHIVES))
    for key, title in TITLES.items():
        spec = ARCHIVES[key]
        p = sub.add_parser(key, help=f"download, verify and extract {title} ({spec.url})")
        _download_args(p, "use this already downloaded archive instead (it is verified)")
    c = sub.add_parser("imagenet_c", help="download, verify and extract ImageNet-C archives")
    _download_args(c, "use this already downloaded archive of one --set (it is verified)")
    c.add_argument(
        "--set",
        dest="sets",
        action="append",
        choices=list(IMAGENET_C_ARCHIVES),
        help="an archive to get (repeatable; default: all five): "
        + "; ".join(f"{k}: {', '.join(v)}" for k, v in RELEASED.items()),
    )
    im = sub.add_parser("imagenet", help="check an ILSVRC2012 val folder (not downloadable)")
    im.add_argument("--root", help="the val folder (wnid folders or flat files)")
    im.add_argument("--devkit", help="ILSVRC2012_devkit_t12 folder (flat layout)")
    im.add_argument("--labels-file", help="file -> wnid table (flat layout, instead of devkit)")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.dataset != "imagenet":
        common = (args.url, args.archive, args.keep_archive, args.timeout)
    if args.dataset == "imagenetv2":
        path = prepare_imagenetv2(args.root, args.variant, *common)
        print(f"ImageNetV2 {args.variant} ready: data.root={path}")
    elif args.dataset in TITLES:
        spec = ARCHIVES[args.dataset]
        path = prepare_archive(spec, args.root, *common)
        print(f"{TITLES[args.dataset]} ready ({checksum_note(spec, args.url)}); evaluate with:")
        print(f"  python evaluate.py data={args.dataset} data.root={path}")
    elif args.dataset == "imagenet_c":
        sets = tuple(dict.fromkeys(args.sets or IMAGENET_C_ARCHIVES))
        root = prepare_imagenet_c(args.root, sets, *common)
        note = checksum_note(IMAGENET_C_ARCHIVES[sets[0]], args.url)
        corruptions = [c for s in sets for c in RELEASED[s]]
        print(f"ImageNet-C {', '.join(sets)} ready ({note}): {', '.join(corruptions)}; e.g.")
        print(
            f"  python evaluate.py data=imagenet_c data.prepared=true data.root={root} "
            f"data.corruption={corruptions[0]} data.severity=3"
        )
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
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except UserError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

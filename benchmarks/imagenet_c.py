"""ImageNet-C on the fly: how much each of the 15 corruptions changes an image at each
severity, and how fast data=imagenet_c delivers images with our corruptions and with
corrupt-tta's.

    python benchmarks/imagenet_c.py [--photos 5] [--speed-images 12] [--severity 3]

1. Mean absolute pixel change (0..255) of the 224 x 224 centre crops of the first
   ``--photos`` demo photos, per corruption and severity 1..5, seed 0 (ours; corrupt-tta's
   beside it, seeded through numpy's global state).
2. Images per second of the data=imagenet_c dataset (base=demo: decode, resize 256, crop
   224, corrupt; no model), one process, one thread, severity ``--severity``, each
   implementation over the same ``--speed-images`` photos after one warm-up image.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per measurement, as a loader worker

import numpy as np
from common import REPO  # noqa: F401  (puts this checkout's src first on the path)

from imagenet_multilabel.data.datasets.corruptions import BENCHMARK, NEEDS_EXTRA, corrupt
from imagenet_multilabel.data.datasets.folders import WnidFilesDataset
from imagenet_multilabel.data.datasets.imagenet_c import center_crop, imagenet_c
from imagenet_multilabel.data.images import load_rgb

IMPLEMENTATIONS = ("ours", "corrupt_tta")


def pixel_change(crops: list[np.ndarray], implementation: str) -> dict[str, list[float]]:
    table = {}
    for name in BENCHMARK:
        table[name] = [
            float(
                np.mean(
                    [
                        np.abs(corrupt(c, name, s, i, implementation).astype(float) - c).mean()
                        for i, c in enumerate(crops)
                    ]
                )
            )
            for s in range(1, 6)
        ]
    return table


def images_per_second(name: str, implementation: str, severity: int, n: int) -> float:
    ds = imagenet_c(base="demo", corruption=name, severity=severity, implementation=implementation)
    ds[n]  # warm-up: imports, the frost pictures
    start = time.perf_counter()
    for i in range(n):
        ds[i]
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--speed-images", type=int, default=12)
    parser.add_argument("--severity", type=int, default=3)
    args = parser.parse_args()
    demo = WnidFilesDataset()
    crops = [np.asarray(center_crop(load_rgb(demo.root / f))) for f in demo.files[: args.photos]]

    change = {impl: pixel_change(crops, impl) for impl in IMPLEMENTATIONS}
    print(f"mean absolute pixel change (0..255), {len(crops)} demo crops 224 x 224, seed 0")
    print("written here: *; ours | corrupt-tta per severity")
    print(f"{'corruption':<20}" + "".join(f"{f'severity {s}':>16}" for s in range(1, 6)))
    for name in BENCHMARK:
        cells = [
            f"{change['ours'][name][s]:6.1f} |{change['corrupt_tta'][name][s]:6.1f}"
            for s in range(5)
        ]
        mark = "*" if name in NEEDS_EXTRA else ""
        print(f"{name + mark:<20}" + "".join(f"{c:>16}" for c in cells))

    print(
        f"\nimages/s of data=imagenet_c (base=demo, severity {args.severity}, "
        f"{args.speed_images} images, 1 process, 1 thread)"
    )
    print(f"{'corruption':<20}{'ours':>10}{'corrupt-tta':>13}{'ours / tta':>12}")
    rates = {impl: [] for impl in IMPLEMENTATIONS}
    for name in BENCHMARK:
        ours, tta = (
            images_per_second(name, impl, args.severity, args.speed_images)
            for impl in IMPLEMENTATIONS
        )
        rates["ours"].append(ours)
        rates["corrupt_tta"].append(tta)
        print(f"{name:<20}{ours:>10.1f}{tta:>13.1f}{ours / tta:>11.2f}x")
    clean = images_per_second("contrast", "ours", 1, args.speed_images)
    print(f"{'(contrast 1, ref.)':<20}{clean:>10.1f}")
    hm = {k: len(v) / sum(1 / r for r in v) for k, v in rates.items()}
    print(
        f"{'all 15 (harmonic)':<20}{hm['ours']:>10.1f}{hm['corrupt_tta']:>13.1f}"
        f"{hm['ours'] / hm['corrupt_tta']:>11.2f}x"
    )


if __name__ == "__main__":
    main()

"""Time the gallery of a 50,000-image run and measure its page.

Synthetic, seeded predictions shaped like a labelled ImageNet val run (~3% empty label
sets, 1-3 labels, ~80% top-1, some confident errors); the image paths cycle through real
photos (the 1000 of imagenet-sample, else the demo photos) so that thumbnails are really
made. Or pass ``--run-dir`` to time the gallery of an existing run.

    PYTHONPATH=src python benchmarks/bench_gallery.py [--n 50000] [--per-section 48]
    PYTHONPATH=src python benchmarks/bench_gallery.py --run-dir outputs/evaluate/<run>

Prints the build's wall-clock seconds (median of ``--repeat``), the page's size (HTML,
thumbnails) and the process's peak memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import SAMPLE

from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.data.datasets.folders import DEMO_ROOT
from imagenet_multilabel.reports.gallery.build import write_gallery
from imagenet_multilabel.runs.rundir import write_predictions


def synthetic_predictions(n: int, c: int, seed: int) -> tuple[np.ndarray, ...]:
    """(logits, target, valid): 1-3 valid labels (the target first) or none; the target
    boosted, often a second label, sometimes a wrong class."""
    rng = np.random.default_rng(seed)
    target = rng.integers(0, c, n)
    logits = rng.standard_normal((n, c), dtype=np.float32)
    valid = np.zeros((n, c), dtype=bool)
    rows = np.arange(n)
    sizes = rng.choice([0, 1, 2, 3], size=n, p=[0.03, 0.72, 0.18, 0.07])
    valid[rows, target] = sizes > 0
    for extra in (1, 2):
        sel = rows[sizes > extra]
        valid[sel, rng.integers(0, c, len(sel))] = True
    logits[rows, target] += rng.normal(8.0, 2.5, n).astype(np.float32)
    second = np.argmax(valid & (np.arange(c) != target[:, None]), axis=1)
    has_second = sizes > 1
    logits[rows[has_second], second[has_second]] += rng.normal(7.0, 3.0, has_second.sum())
    wrong = rng.integers(0, c, n)
    logits[rows, wrong] += rng.normal(5.0, 2.5, n).astype(np.float32)
    return logits, target, valid


def synthetic_run(run_dir: Path, n: int, seed: int) -> Path:
    root = SAMPLE if any(SAMPLE.glob("n*.JPEG")) else DEMO_ROOT
    photos = sorted(p.name for p in root.glob("n*.JPEG"))
    logits, target, valid = synthetic_predictions(n, 1000, seed)
    write_predictions(
        run_dir / "predictions" / "imagenet.npz",
        index=np.arange(n),
        files=[photos[i % len(photos)] for i in range(n)],
        target=target,
        logits=logits,
        valid=valid,
    )
    datasets = {"imagenet": {"class": "synthetic", "root": str(root), "num_images": n}}
    write_json(run_dir / "run.json", {"model": {"name": "synthetic"}, "datasets": datasets})
    write_json(run_dir / "metrics.json", {"imagenet/num_images": n})
    return run_dir


def folder_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--per-section", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exemplars", default="run", help="gallery.exemplars: run, none, DIR")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or synthetic_run(Path(tmp) / "run", args.n, args.seed)
        out = Path(tmp) / "gallery"
        options = {
            "per_section": args.per_section,
            "output_dir": str(out),
            "exemplars": args.exemplars,
        }
        write_gallery(run_dir, options)  # warm-up: imports, class names
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            page = write_gallery(run_dir, options)
            seconds.append(time.perf_counter() - started)
        html = page.stat().st_size
        n_thumbs, thumbs = folder_bytes(out / "thumbs")
        n_examples, examples = folder_bytes(out / "exemplars")
        cards = page.read_text().count('<article class="card"')
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"run: {args.run_dir or f'synthetic, {args.n} images'}")
    print(f"build: {statistics.median(seconds):.2f} s (median of {args.repeat})")
    print(f"cards: {cards}, thumbnails: {n_thumbs}, exemplars ({args.exemplars}): {n_examples}")
    print(
        f"page: {html / 1e3:.0f} kB HTML + {thumbs / 1e3:.0f} kB thumbnails + "
        f"{examples / 1e3:.0f} kB exemplars = {(html + thumbs + examples) / 1e6:.2f} MB"
    )
    print(f"peak memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()

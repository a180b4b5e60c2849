"""How much results depend on the multi-label set: ReaL at three operating points and
Tsipras et al., from finished runs' saved predictions (no model is run here).

    python benchmarks/label_sensitivity.py --runs outputs/evaluate/<a> outputs/evaluate/<b> ...

prints and writes under ``--out``:

- ``<out>/stats/``: ReaL at each point (labels per image, share multi-label), the raters'
  agreement, ReaL against Tsipras on their common images (``stats``);
- ``<out>/score/``: every multi-label metric of every run under each label set, its range, the
  figure of metric against operating point (``sensitivity.png``) and, for several runs,
  Kendall's tau between the rankings and the swapped pairs on the images every set labels
  (``score``);
- a short summary (``summary.md``) of the headline metric.

Runs over real ImageNet val photos give findings. ``--make-val DIR`` writes a stand-in
val folder for machines without them: the 1000 photos of ../shared/data/imagenet-sample
(one per class), each given the val name of an image that ReaL rated and Tsipras
annotated whose original label is the photo's class. Results on it check the mechanics,
not a finding (the photos are not those images).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "imagenet-sample"
POINTS = (0.5, 0.8, 0.95)
HEADLINE = ("real_top1", "vartopk_strict", "main_top1")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def _command(*args: str) -> None:
    cmd = [sys.executable, "-m", "imagenet_multilabel", *args]
    print("$", " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{cmd[3]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1]}")


def make_val(folder: Path) -> int:
    """The stand-in val folder (wnid folders of val-named links to the sample photos)."""
    sys.path.insert(0, str(ROOT / "src"))
    from imagenet_multilabel.core.classes import wnids
    from imagenet_multilabel.data.labels.originals import original_labels
    from imagenet_multilabel.data.labels.ratings import read_rated_pairs

    rated = {f"ILSVRC2012_val_{i:08d}.JPEG" for i in read_rated_pairs().images.tolist()}
    by_class: dict[int, str] = {}
    for name, label in sorted(original_labels().items()):
        if name in rated:
            by_class.setdefault(label, name)
    ids = wnids()
    made = 0
    for photo in sorted(SAMPLE.glob("n*.JPEG")):
        cls = ids.index(photo.name.split("_", 1)[0])
        if cls not in by_class:
            continue
        target = folder / ids[cls] / by_class[cls]
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(photo.resolve())
        made += 1
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="*", type=Path, default=[])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "label_sensitivity")
    parser.add_argument("--make-val", type=Path, default=None)
    args = parser.parse_args()
    if args.make_val is not None:
        made = make_val(args.make_val)
        print(f"{args.make_val}: {made} sample photos under val names (mechanics check only)")
        if not args.runs:
            return
    if not args.runs:
        sys.exit("give --runs (finished evaluations with saved predictions) or --make-val")
    points = "[" + ",".join(map(str, POINTS)) + "]"
    _command("stats", f"labels.min_score={points}", "compare=[tsipras]",
             f"hydra.run.dir={args.out / 'stats'}")  # fmt: skip
    _command(
        "score",
        "run_dir=[" + ",".join(str(r.resolve()) for r in args.runs) + "]",
        "labels=[real,tsipras]",
        f"labels.min_score={points}",
        "labels.allow_missing=true",
        f"hydra.run.dir={args.out / 'score'}",
    )
    stats = json.loads((args.out / "stats" / "stats.json").read_text())
    result = json.loads((args.out / "score" / "sensitivity.json").read_text())
    lines = ["# Label-set sensitivity", "", "## ReaL at three operating points", ""]
    lines.append("| label set | labels per labeled image | multi-label share | empty |")
    lines.append("|---|---|---|---|")
    for name, s in stats.items():
        if isinstance(s, dict) and "labels_per_image" in s:
            lines.append(
                f"| {name} | {s['labels_per_image']:.3f} | {100 * s['multi_share']:.2f}% | "
                f"{s['by_count']['0']:,} |"
            )
    for c in stats.get("compared", []):
        if c["second"] == "tsipras":
            lines.append(
                f"\n{c['first']} vs tsipras on {c['common']:,} common images: same set "
                f"{100 * c['same_set']:.2f}%, same count {100 * c['same_count']:.2f}%, "
                f"original label kept {100 * c['original_in_first']:.2f}% vs "
                f"{100 * c['original_in_second']:.2f}%"
            )
    lines += ["", "## Headline metrics under each label set", ""]
    for key, entry in result["metrics"].items():
        if key.split("/", 1)[1] not in HEADLINE:
            continue
        lines.append(f"{key}:")
        for run in result["runs"]:
            row = entry["values"][run]
            cells = ", ".join(f"{o} {v:.4f}" if v is not None else f"{o} -" for o, v in row.items())
            rng = entry["range"][run]
            lines.append(
                f"- {run}: {cells}; range {rng:.4f}" if rng is not None else f"- {run}: {cells}"
            )
        ranking = (result.get("rankings") or {}).get(key)
        if ranking:
            taus = ", ".join(f"{o} {t:.3f}" for o, t in ranking["tau"].items())
            swaps = {o: s for o, s in ranking["swaps"].items() if s}
            lines.append(
                f"- Kendall's tau vs {result['options'][0]}: {taus}; swaps: {swaps or 'none'}"
            )
    lines.append(f"\ncommon images per run: {result['common_images']}")
    lines.append(f"figure: {args.out / 'score' / 'sensitivity.png'}")
    text = "\n".join(lines)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

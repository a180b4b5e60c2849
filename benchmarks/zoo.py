"""The paper's study (hundreds of timm models x datasets in one sweep) rehearsed on a CPU:
one model of every timm architecture family with ImageNet-1k weights, random weights, each
at the preprocessing of its pretrained config (test size included), through one multirun.

    python benchmarks/zoo.py select          # -> benchmarks/zoo_models.txt (the families)
    python benchmarks/zoo.py run --out DIR   # the sweep (default launcher), then its report
    python benchmarks/zoo.py run --out DIR --stop-after 840   # a part of it; again: resumes
    python benchmarks/zoo.py run --out DIR --launcher submitit_local --models 25 --smallest \
        +hydra.launcher.array_parallelism=2   # 50 jobs, a process each, 2 at a time
    python benchmarks/zoo.py report DIR      # the report of a sweep folder again

A family is a timm model module and the alphabetic stem of its architecture names
(``resnet:seresnext``, ``efficientnet:mixnet``, ``vision_transformer:vit``), over the
pretrained tags whose classifier has 1000 classes; its model is the one with the fewest
parameters (counted on the meta device: nothing is allocated), at its smallest test size.
The cap: at most ``--max-params`` (50 M) parameters and a test input of at most
``--max-size`` (384) pixels a side; families whose smallest model is larger are listed as
over the cap, not run. Each model runs on two datasets of 8 images: 8 of the demo photos
(``data=demo``) and 8 two-photo composites of them (``data=patchml``), batch size 8.

``run`` into a folder that holds a sweep resumes it (the same command as ``resume=``: the
jobs with complete results are skipped); ``--stop-after S`` ends the sweep's process after
S seconds (the job it was running runs again on the next ``run``), so that the study can
run in parts on a shared machine.

The report: families that ran / were refused with one line / failed (with a traceback),
per-job wall (start-up, first batch, scoring) and resident memory of the first and last 50
jobs that ran (skipped ones aside), open file descriptors and threads at the end of each
process (``sweeps/probe.py`` records each job).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # measure this checkout, not an installed copy

NAMES_FILE = REPO / "benchmarks" / "zoo_models.txt"
DEMO = REPO / "src" / "imagenet_multilabel" / "assets" / "demo"
PROBE = "+hydra.callbacks.resources._target_=imagenet_multilabel.sweeps.probe.JobResources"


# ------------------------------------------------------------------------------ select


def family_of(arch: str) -> str:
    """``<timm module>:<stem>``: the module that defines the architecture and the
    alphabetic start of its name (``tf_`` kept: TensorFlow ports pad differently)."""
    from timm.models._registry import _model_to_module

    bare = arch.removeprefix("tf_")
    stem = re.match(r"[a-z]+", bare)
    prefix = "tf_" if arch.startswith("tf_") else ""
    return f"{_model_to_module[arch]}:{prefix}{stem.group(0) if stem else bare}"


def select(max_params: float, max_size: int, out: Path) -> None:
    import timm
    import torch
    from timm.models import get_pretrained_cfg

    families: dict[str, list[tuple[int, int, str]]] = collections.defaultdict(list)
    params: dict[str, int] = {}
    started = time.perf_counter()
    for name in timm.list_models(pretrained=True):
        arch = name.split(".")[0]
        cfg = get_pretrained_cfg(name)
        if cfg is None or cfg.num_classes != 1000 or arch.startswith("test_"):
            continue
        if arch not in params:
            with torch.device("meta"):  # the parameter count without allocating
                model = timm.create_model(arch, pretrained=False)
            params[arch] = sum(p.numel() for p in model.parameters())
        size = max((cfg.test_input_size or cfg.input_size)[1:])
        families[family_of(arch)].append((params[arch], size, name))
    lines = [
        "# benchmarks/zoo.py select: the smallest ImageNet-1k model of every timm family",
        f"# timm {timm.__version__}; cap: <= {max_params / 1e6:g} M parameters, test input "
        f"<= {max_size} px",
    ]
    over = []
    for family, models in sorted(families.items()):
        n, size, name = min(models)
        row = f"{name}  # {family} {n / 1e6:.1f}M {size}px"
        if n > max_params or size > max_size:
            over.append(f"# over the cap: {row.replace('  # ', ' ')}")
        else:
            lines.append(row)
    out.write_text("\n".join(lines + over) + "\n")
    print(
        f"{len(families)} families ({len(params)} architectures counted in "
        f"{time.perf_counter() - started:.0f} s): {len(lines) - 2} within the cap, "
        f"{len(over)} over it -> {out}"
    )


# --------------------------------------------------------------------------------- run


def model_names(path: Path, limit: int | None, seed: int, smallest: bool = False) -> list[str]:
    """The models of the names file, shuffled (``seed``): the first and the last jobs of
    the sweep are then alike draws of the zoo, and their costs comparable. ``smallest``:
    the ``limit`` models with the fewest parameters (the names file's comments), shuffled."""
    import random

    from imagenet_multilabel.sweeps.launch import resolve_model_names

    names = resolve_model_names(str(path))
    if smallest and limit:
        size = _families(path)[2]
        names = sorted(names, key=lambda n: size.get(n, float("inf")))[:limit]
    random.Random(seed).shuffle(names)
    return names[:limit] if limit else names


def photos(out: Path, count: int = 8) -> Path:
    """``count`` demo photos of distinct classes, spread over the 100 (the two datasets'
    images). Copied once: a copy made again would be new files to the jobs' data
    fingerprints, and a resumed sweep would run every job again."""
    folder = out / f"photos{count}"
    files = sorted(DEMO.glob("*.JPEG"))
    step = len(files) // count
    folder.mkdir(parents=True, exist_ok=True)
    for f in files[::step][:count]:
        if not (folder / f.name).is_file():
            shutil.copy2(f, folder / f.name)
    return folder


def run(args: argparse.Namespace) -> int:
    import os
    import signal

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = model_names(args.names, args.models, args.seed, args.smallest)
    env = dict(os.environ, ZOO_PHOTOS=str(photos(out)), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = f"{REPO / 'src'}{os.pathsep}{env.get('PYTHONPATH', '')}"
    sweep = out / "sweep"
    command = [
        sys.executable,
        str(REPO / "evaluate.py"),
        "-m",
        "model=timm",
        "model.weights=none",
        "model.name=" + ",".join(names),  # before data: each model's two jobs run in a row
        f"hydra.searchpath=[file://{REPO / 'benchmarks' / 'zoo_conf'}]",
        "data=zoo_photos,zoo_composites",
        f"batch_size={args.batch_size}",
        "logger=none",
        "callbacks=none",
        f"hydra.sweep.dir={sweep}",  # an existing sweep: resumed (resume=<dir> is this)
        PROBE,
    ]
    if args.launcher != "basic":
        command += [f"hydra/launcher={args.launcher}", *args.launcher_args]
    resumed = " (resumed)" if (sweep / "multirun.yaml").is_file() else ""
    print(f"{len(names)} models x 2 datasets = {2 * len(names)} jobs -> {sweep}{resumed}")
    started = time.perf_counter()
    with open(out / "sweep.log", "a") as log:
        # its own session: --stop-after ends the sweep and the processes it started
        proc = subprocess.Popen(
            command, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=args.stop_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait()
            print(f"stopped after {args.stop_after:.0f} s: run the same command to go on")
    parts_file = out / "sweep_wall.json"
    parts = json.loads(parts_file.read_text()).get("parts", []) if parts_file.is_file() else []
    parts.append({"wall_s": time.perf_counter() - started, "exit_code": code})
    parts_file.write_text(json.dumps({"wall_s": sum(p["wall_s"] for p in parts), "parts": parts}))
    report(sweep, args.names)
    return 0


# ------------------------------------------------------------------------------ report

RESULTS = ("metrics.json", "failed.json")  # a job's result: what it wrote last
USER_ERRORS = ("UserError", "ModelError", "DataError", "ConfigError", "LabelError")


def _families(names_file: Path) -> tuple[dict[str, str], list[str], dict[str, float]]:
    """model name -> family, the over-the-cap lines, and model name -> millions of
    parameters, of the names file."""
    family, over, size = {}, [], {}
    for line in names_file.read_text().splitlines():
        if line.startswith("# over the cap:"):
            over.append(line.removeprefix("# over the cap:").strip())
        elif line and not line.startswith("#") and "#" in line:
            name, comment = line.split("#", 1)
            family[name.strip()] = comment.split()[0]
            size[name.strip()] = float(comment.split()[1].removesuffix("M"))
    return family, over, size


def _jobs_that_ran(sweep: Path) -> list[dict]:
    """The probe's records of the jobs that ran, in the order they ran: a resumed sweep's
    skipped jobs left out, a job run again (stopped, or failed before) counted once."""
    records = [json.loads(x) for x in (sweep / "jobs_resources.jsonl").read_text().splitlines()]
    last = {r["dir"]: i for i, r in enumerate(records) if not r.get("skipped")}
    # a job stopped while it ran again (--stop-after) has neither result now: not done
    done = [i for d, i in last.items() if any((sweep / d / f).is_file() for f in RESULTS)]
    return [records[i] for i in sorted(done)]


def _planned(sweep: Path) -> list[str]:
    """The models the sweep was started with (its multirun.yaml; [] without one)."""
    from omegaconf import OmegaConf

    if not (sweep / "multirun.yaml").is_file():
        return []
    task = OmegaConf.load(sweep / "multirun.yaml").hydra.overrides.task
    return next((o.split("=", 1)[1].split(",") for o in task if o.startswith("model.name=")), [])


def _median(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def report(sweep: Path, names_file: Path = NAMES_FILE, window: int = 50) -> None:
    family, over, _ = _families(names_file)
    jobs = _jobs_that_ran(sweep)
    outcome: dict[str, list[str]] = collections.defaultdict(list)  # model -> outcomes
    lines: dict[str, str] = {}
    for job in jobs:
        folder = sweep / job["dir"]
        failed = folder / "failed.json"
        record = json.loads((folder / "job.json").read_text())
        model = next(o.split("=", 1)[1] for o in record["overrides"] if o.startswith("model.name="))
        job["model"] = model
        if failed.is_file():
            info = json.loads(failed.read_text())
            kind = "refused" if info.get("type") in USER_ERRORS else "failed"
            outcome[model].append(kind)
            lines[model] = info["error"]
        else:
            outcome[model].append("ran")
            run = json.loads((folder / "run.json").read_text())
            job.update(run.get("timings") or {})
    status = {
        m: ("failed" if "failed" in o else "refused" if "refused" in o else "ran")
        for m, o in outcome.items()
    }
    by = collections.defaultdict(list)
    for model, s in status.items():
        by[s].append(model)
    planned = _planned(sweep) or list(family)
    not_run = [m for m in planned if m not in status]
    print(
        f"\n{sweep}: {len(jobs)} jobs of {2 * len(planned)}, "
        f"{sum(j['failed'] for j in jobs)} failed; families: {len(by['ran'])} ran, "
        f"{len(by['refused'])} refused in one line, {len(by['failed'])} failed, "
        f"{len(not_run)} not reached, {len(over)} over the cap (not run)"
    )
    for kind in ("refused", "failed"):
        for model in sorted(by[kind]):
            print(f"  {kind}: {family.get(model, '?')} {model}: {lines[model]}")
    for line in over:
        print(f"  over the cap: {line}")
    if len(jobs) >= 2:
        n = min(window, len(jobs) // 2)
        print(f"\nper job (median) | first {n} jobs | last {n} jobs")
        print("---|---:|---:")
        for key, label in (
            ("wall_s", "wall (s)"),
            ("startup_s", "start-up (s)"),
            ("first_batch_s", "first batch (s)"),
            ("scoring_s", "scoring (s)"),
            ("rss_start_mb", "resident memory at start (MiB)"),
            ("rss_end_mb", "resident memory at end (MiB)"),
        ):
            a = _median([j.get(key) for j in jobs[:n]])
            b = _median([j.get(key) for j in jobs[-n:]])
            print(f"{label} | {a:.2f} | {b:.2f} ({100 * (b / a - 1):+.0f}%)")
        processes: dict[int, list[dict]] = collections.defaultdict(list)
        for job in jobs:
            processes[job["pid"]].append(job)
        _ends(list(processes.values()))
    wall = sweep.parent / "sweep_wall.json"
    if wall.is_file():
        print(f"sweep wall: {json.loads(wall.read_text())['wall_s']:.0f} s")


def _ends(processes: list[list[dict]]) -> None:
    """Open files, threads and peak memory at the end of each process of the sweep (of
    the processes together where each ran one job: a launcher of one process per job)."""
    if max(len(p) for p in processes) == 1:
        ends = [p[0] for p in processes]

        def span(key: str) -> str:
            low, high = min(e[key] for e in ends), max(e[key] for e in ends)
            return f"{low:.0f}" if low == high else f"{low:.0f}-{high:.0f}"

        print(
            f"\n{len(ends)} processes of one job each; at their end {span('open_fds')} open "
            f"file descriptors, {span('threads')} threads; peak resident memory "
            f"{span('peak_rss_mb')} MiB"
        )
        return
    print(f"\n{len(processes)} process(es); at the end of each:")
    for part in processes:
        end, second = part[-1], part[min(1, len(part) - 1)]
        print(
            f"  {len(part)} jobs: {end['open_fds']} open file descriptors, "
            f"{end['threads']} threads (after its second job: {second['open_fds']}, "
            f"{second['threads']}); peak resident memory {end['peak_rss_mb']:.0f} MiB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("select", help="the families and their models -> zoo_models.txt")
    p.add_argument("--max-params", type=float, default=50e6)
    p.add_argument("--max-size", type=int, default=384)
    p.add_argument("--out", type=Path, default=NAMES_FILE)
    p = sub.add_parser("run", help="the sweep, then its report")
    p.add_argument("--out", type=Path, required=True, help="a folder for the sweep")
    p.add_argument("--names", type=Path, default=NAMES_FILE)
    p.add_argument("--models", type=int, default=None, help="only the first N (shuffled)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smallest", action="store_true", help="--models N: the N smallest")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--launcher", default="basic", help="basic or submitit_local")
    p.add_argument("--stop-after", type=float, default=None, help="end the sweep after S s")
    p.add_argument("launcher_args", nargs="*", help="more overrides (hydra.launcher.*)")
    p = sub.add_parser("report", help="the report of a zoo sweep folder")
    p.add_argument("sweep", type=Path)
    p.add_argument("--names", type=Path, default=NAMES_FILE)
    args = parser.parse_args()
    if args.command == "select":
        select(args.max_params, args.max_size, args.out)
        return 0
    if args.command == "run":
        return run(args)
    report(args.sweep, args.names)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

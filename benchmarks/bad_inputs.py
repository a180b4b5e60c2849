"""A trial of bad inputs, as a user gives them: each case is built in a temp folder from the
demo photos, run, and judged. Prints a markdown table: case | command | exit | error line |
verdict.

    python benchmarks/bad_inputs.py [--only SUBSTRING] [--no-cli] [--keep DIR]

Expected of every bad input: one line ``error: ...`` on stderr saying what is wrong and
what to do, exit code 2 (143 for SIGTERM), no traceback, no metrics.json; of an input that
is legitimately usable (a CMYK or 16-bit image, a spreadsheet export): a correct result.

Cheap cases call the task in this process, through the same ``run_task`` (entry/run.py) as the
command line, on a config composed by Hydra's compose API (``(in-process)`` in the table);
cases where the command line itself matters (Hydra's own errors, signals, DDP, the run
folder Hydra writes) start ``python evaluate.py ...`` / ``python -m imagenet_multilabel <command>``.
The whole trial takes about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout, not an installed copy
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("WANDB_MODE", "disabled")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from imagenet_multilabel.checks import check_run_settings, check_train_settings  # noqa: E402

DEMO = REPO / "src" / "imagenet_multilabel" / "assets" / "demo"
PHOTOS = sorted(DEMO.glob("n*.JPEG"))
TINY = "model=test_tiny"
TIMES: dict[str, float] = {}  # case -> seconds to its error line
ABBREVIATIONS: dict[str, str] = {}  # in the table's commands: text -> its short name


# ------------------------------------------------------------------------------ results


@dataclass
class Result:
    code: int
    stderr: str
    stdout: str = ""
    logs: str = ""
    out: Path | None = None
    seconds: float = 0.0
    value: object = None

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("error: ")]

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr

    @property
    def line(self) -> str:
        """The error line, else the last line of a traceback or of stderr."""
        if self.error_lines:
            return self.error_lines[0][len("error: ") :]
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        if self.traceback:
            after = self.stderr.split("Traceback (most recent call last)")[-1].splitlines()
            tail = [ln for ln in after if ln and not ln.startswith(" ")]
            return "TRACEBACK " + (tail[-1] if tail else lines[-1])
        hydra = [ln for ln in lines if ln.startswith(("Error", "Could not", "Key "))]
        if hydra:
            return hydra[0]
        return lines[-1] if lines else ""

    def metrics(self) -> dict[str, float]:
        path = (self.out or Path("/nonexistent")) / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}


@dataclass
class Case:
    """``args``: overrides of the task (or argv of prepare), with ``{d}`` the case's
    folder and ``{run}`` / ``{lrun}`` two finished runs (without / with a label set)."""

    name: str
    group: str
    args: list[str]
    expect: str = "error"  # error | ok | sigterm (exit 143) | sigint (130) | nonzero
    match: str = ""  # a part of the error line that must be there
    tool: str = "evaluate"  # evaluate | score | stats | gap | prepare
    cli: bool = False
    setup: Callable[[Path], None] | None = None
    check: Callable[[Result, Path], str | None] | None = None  # a problem, or None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 300
    action: Callable[[subprocess.Popen, Path], None] | None = None  # signals, for cli cases
    note: str = ""


# ------------------------------------------------------------------------------ inputs


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def wnid(photo: Path) -> str:
    return photo.name.split("_", 1)[0]


def folder(root: Path, n: int = 3, start: int = 0) -> Path:
    """``root/<wnid>/<photo>``: ``n`` demo photos of distinct classes in the val layout."""
    for photo in PHOTOS[start : start + n]:
        (root / wnid(photo)).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, root / wnid(photo) / photo.name)
    return root


def flat(root: Path, n: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for photo in PHOTOS[:n]:
        shutil.copy(photo, root / photo.name)
    return root


def photo(i: int = 0) -> Image.Image:
    return Image.open(PHOTOS[i]).convert("RGB")


def save(image: Image.Image, path: Path, fmt: str, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **kwargs)
    return path


def bad_image(d: Path, rel: str, make: Callable[[Path], object]) -> None:
    """A 3-photo wnid folder under d/val plus one more file ``rel`` made by ``make``."""
    folder(d / "val")
    path = d / "val" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)


def png_bomb(path: Path, width: int = 20000, height: int = 20000) -> None:
    """A valid PNG header claiming width x height pixels (PIL refuses > 2 x its limit)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def gif_animated(path: Path) -> None:
    frames = [photo(0).resize((64, 64)), photo(1).resize((64, 64))]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def png16(path: Path) -> None:
    gray = np.asarray(photo(0).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(gray).save(path, "PNG")  # mode I;16


def tif_float(path: Path) -> None:
    Image.fromarray(np.asarray(photo(0).convert("L"), dtype=np.float32) / 255).save(path, "TIFF")


def tif_int32(path: Path) -> None:
    values = np.asarray(photo(0).convert("L"), dtype=np.int32) * 1000
    Image.fromarray(values).save(path, "TIFF")


def exif_rotated(path: Path) -> None:
    image = photo(0)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    image.save(path, "JPEG", exif=exif)


def palette_transparent(path: Path) -> None:
    image = photo(0).convert("P", palette=Image.Palette.ADAPTIVE)
    image.save(path, "PNG", transparency=0)


def rgba(path: Path) -> None:
    image = photo(0).convert("RGBA")
    image.putalpha(128)
    image.save(path, "PNG")


def decoded_like(reference: Callable[[], Image.Image], tol: float = 8.0):
    """Check: the bad image decodes (load_rgb) to RGB close to ``reference()``."""

    def check(res: Result, d: Path) -> str | None:
        from imagenet_multilabel.data.images import load_rgb

        files = [p for p in (d / "val").rglob("bad*") if p.is_file()]
        got = np.asarray(load_rgb(files[0]), dtype=np.float64)
        ref = np.asarray(reference().convert("RGB"), dtype=np.float64)
        if got.shape != ref.shape:
            return f"decoded shape {got.shape} != {ref.shape}"
        diff = float(np.abs(got - ref).mean())
        return None if diff <= tol else f"decoded pixels differ from the source by {diff:.1f}"

    return check


def num_images(n: int, dataset: str = "folder"):
    def check(res: Result, d: Path) -> str | None:
        got = res.metrics().get(f"{dataset}/num_images")
        return None if got == n else f"{dataset}/num_images={got}, expected {n}"

    return check


def logged(text: str):
    def check(res: Result, d: Path) -> str | None:
        said = text.lower() in (res.logs + res.stderr).lower()
        return None if said else f"not said in the log: {text!r}"

    return check


def all_of(*checks):
    def check(res: Result, d: Path) -> str | None:
        for c in checks:
            problem = c(res, d)
            if problem:
                return problem
        return None

    return check


def has_metric(key: str):
    def check(res: Result, d: Path) -> str | None:
        return None if key in res.metrics() else f"no {key} in metrics.json"

    return check


# ------------------------------------------------------------------------------ runners


def _compose(tool: str, overrides: list[str], out: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from imagenet_multilabel.core.config import CONFIG_DIR

    for o in overrides:  # the run folder the user asked for (else the case's)
        if o.startswith("hydra.run.dir="):
            out = Path(o.split("=", 1)[1])
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(tool, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
        cfg.paths.output_dir = str(out)
        if "trainer" in cfg:
            if not any(o.startswith("num_workers=") for o in overrides):
                cfg.num_workers = 0
            cfg.callbacks = {}
            cfg.trainer.enable_progress_bar = False
    HydraConfig.instance().set_config(cfg)
    return cfg


def _task(tool: str):
    """The task of ``tool``, whether it runs a Trainer, and the check evaluate.py runs first."""
    if tool == "evaluate":
        from imagenet_multilabel.tasks.evaluate import evaluate

        return evaluate, True, check_run_settings
    if tool == "score":
        from imagenet_multilabel.tasks.score import score

        return score, False, None
    if tool == "stats":
        from imagenet_multilabel.tasks.stats import stats

        return stats, False, None
    if tool == "train":
        from imagenet_multilabel.tasks.train import train

        return train, True, check_train_settings
    from imagenet_multilabel.tasks.gap import gap

    return gap, False, None


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def run_inproc(case: Case, args: list[str], d: Path) -> Result:
    """The task through run_task (its exit codes and error line), in this process."""
    from imagenet_multilabel.core.errors import one_line
    from imagenet_multilabel.entry.run import run_task

    out = d / "out"
    err, std, capture = io.StringIO(), io.StringIO(), _Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    started = time.perf_counter()
    value = None
    try:
        with (
            contextlib.redirect_stderr(err),
            contextlib.redirect_stdout(std),
            environment(case.env),
        ):
            try:
                if case.tool == "prepare":
                    from imagenet_multilabel.commands.prepare import main

                    code = main(args)
                else:
                    try:
                        cfg = _compose(case.tool, args, out)
                    except Exception as e:  # Hydra's own errors, as the command line has them
                        print(f"{type(e).__name__}: {one_line(e)}", file=sys.stderr)
                        raise SystemExit(1) from None
                    task, trainer, check = _task(case.tool)
                    value = run_task(task, cfg, trainer=trainer, check=check)
                    code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException as e:  # judged, not hidden
                print("Traceback (most recent call last):", file=sys.stderr)
                print(f"{type(e).__name__}: {one_line(e)}", file=sys.stderr)
                code = 1
    finally:
        root.removeHandler(capture)
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
    return Result(
        code,
        err.getvalue(),
        std.getvalue(),
        "\n".join(capture.lines),
        out,
        time.perf_counter() - started,
        value,
    )


CLI = {
    "evaluate": [sys.executable, "evaluate.py"],
    "score": [sys.executable, "-m", "imagenet_multilabel", "score"],
    "stats": [sys.executable, "-m", "imagenet_multilabel", "stats"],
    "gap": [sys.executable, "-m", "imagenet_multilabel", "gap"],
    "prepare": [sys.executable, "-m", "imagenet_multilabel", "prepare"],
    "train": [sys.executable, "train.py"],
    "gallery": [sys.executable, "-m", "imagenet_multilabel", "gallery"],
    "propose": [sys.executable, "-m", "imagenet_multilabel", "propose"],
    "report": [sys.executable, "-m", "imagenet_multilabel", "report"],
}
NOT_HYDRA = ("prepare", "propose", "report")  # no hydra.run.dir for these


def run_cli(case: Case, args: list[str], d: Path) -> Result:
    out = d / "out"
    argv = list(args)
    multirun = "-m" in argv or any(a.startswith("hparams_search=") for a in argv)
    if (
        case.tool not in NOT_HYDRA
        and not multirun
        and not any(a.startswith("hydra.run.dir=") for a in argv)
    ):
        argv.append(f"hydra.run.dir={out}")
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}", **case.env}
    for key, value in case.env.items():
        if value == "":
            env.pop(key)
    started = time.perf_counter()
    proc = subprocess.Popen(
        CLI[case.tool] + argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    if case.action is not None:
        case.action(proc, out)
    try:
        stdout, stderr = proc.communicate(timeout=case.timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        code, stderr = -999, stderr + f"\n(timed out after {case.timeout:.0f} s)"
    code = 128 - code if code < 0 and code != -999 else code
    log = out / f"{case.tool if case.tool == 'train' else 'evaluate'}.log"
    logs = log.read_text(errors="replace") if log.is_file() else ""
    return Result(code, stderr, stdout, logs, out, time.perf_counter() - started)


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, grandchildren, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def started(proc: subprocess.Popen, out: Path) -> bool:
    """Hydra has started the job (its .hydra folder is written just before the task)."""
    return (out / ".hydra").is_dir()


def loading(processes: int):
    """Validation runs: the loader workers (and DDP ranks) have been started."""
    return lambda proc, out: len(descendants(proc.pid)) >= processes


def signal_when(sig: int, ready: Callable, group: bool = False, delay: float = 0.5):
    """An action: once ``ready(proc, out)``, wait ``delay`` s and send ``sig`` to the
    process (or its process group, as Ctrl-C in a terminal does)."""

    def action(proc: subprocess.Popen, out: Path) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not ready(proc, out):
            time.sleep(0.1)
        time.sleep(delay)
        if proc.poll() is None:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    return action


@contextlib.contextmanager
def environment(env: dict[str, str]):
    """Set (or, for "", unset) environment variables for an in-process case."""
    saved = {k: os.environ.get(k) for k in env}
    for key, value in env.items():
        if value:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ------------------------------------------------------------------------------ judging


def judge(case: Case, res: Result, d: Path) -> str:
    problems = []
    metrics_left = res.out is not None and (res.out / "metrics.json").is_file()
    if case.expect in ("error", "sigterm", "sigint", "nonzero"):
        want = {"error": 2, "sigterm": 143, "sigint": 130, "nonzero": None}[case.expect]
        if res.code == 0:
            return "**BAD: silent** (exit 0)"
        if res.traceback:
            problems.append("traceback")
        if want is not None and res.code != want:
            problems.append(f"exit {res.code} (want {want})")
        if case.expect != "nonzero" and len(res.error_lines) != 1:
            problems.append(f"{len(res.error_lines)} error lines")
        if case.match and case.match.lower() not in res.line.lower():
            problems.append(f"line lacks {case.match!r}")
        if metrics_left:
            problems.append("metrics.json left")
    else:
        if res.code != 0:
            problems.append(f"exit {res.code}")
    if case.check is not None and not (case.expect == "ok" and res.code != 0):
        problem = case.check(res, d)
        if problem:
            problems.append(problem)
    if not problems:
        return "ok" + (f" ({case.note})" if case.note else "")
    return "**BAD**: " + "; ".join(problems)


def command_text(case: Case, args: list[str], tmp: Path) -> str:
    tool = " ".join(a.replace(sys.executable, "python") for a in CLI[case.tool])
    text = " ".join([tool, *args]).replace(str(tmp), "$T")
    for long, short in ABBREVIATIONS.items():
        text = text.replace(long, short)
    prefix = " ".join(f"{k}={v or '<unset>'}" for k, v in case.env.items())
    text = f"{prefix} {text}".strip()
    return text + ("" if case.cli else " (in-process)")


def cell(text: str, width: int) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def run_case(
    case: Case, number: int, tmp: Path, shared: dict[str, Path]
) -> tuple[Result, str, str]:
    d = tmp / f"c{number:03d}"
    d.mkdir(parents=True)
    if case.setup is not None:
        case.setup(d)
    fmt = {"d": d, **shared}
    args = [a.format(**fmt) for a in case.args]
    res = (run_cli if case.cli else run_inproc)(case, args, d)
    (d / "stderr.txt").write_text(res.stderr + "\n--- log ---\n" + res.logs)
    return res, judge(case, res, d), command_text(case, args, tmp)


# ------------------------------------------------------------------------------ cases
# fmt: off

FOLDER = [TINY, "data=folder", "data.root={d}/val"]


def _image_cases() -> list[Case]:
    """The bad image files. Over 80 lines because it is one table, a row per file (with the few
    helpers that make them); cut in two, one kind of input would be listed in two places."""
    def make(data):
        return lambda p: write(p, data)

    jpeg = PHOTOS[0].read_bytes()
    t = "n01440764"  # the class folder of the first demo photo (tench)
    rows = [
        # name, file, make, expect, match, check, note
        ("corrupt JPEG", "bad.JPEG", make(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8),
         "error", "cannot decode image", None, ""),
        ("truncated JPEG", "bad.JPEG", make(jpeg[: len(jpeg) // 2]),
         "error", "cannot decode image", None, ""),
        ("empty file", "bad.JPEG", make(b""), "error", "cannot decode image", None, ""),
        ("text named .jpg", "bad.jpg", make("hello, not an image\n"),
         "error", "cannot decode image", None, ""),
        ("PNG named .jpg", "bad.jpg", lambda p: save(photo(0), p, "PNG"),
         "ok", "", decoded_like(lambda: photo(0), 0.0), "decoded by content"),
        ("CMYK JPEG", "bad.jpg", lambda p: save(photo(0).convert("CMYK"), p, "JPEG", quality=95),
         "ok", "", decoded_like(lambda: photo(0), 6.0), ""),
        ("16-bit PNG", "bad.png", png16, "ok", "",
         decoded_like(lambda: photo(0).convert("L"), 0.6), "scaled to 8 bits"),
        ("grayscale JPEG", "bad.jpg", lambda p: save(photo(0).convert("L"), p, "JPEG", quality=95),
         "ok", "", decoded_like(lambda: photo(0).convert("L"), 3.0), ""),
        ("palette PNG with transparency", "bad.png", palette_transparent, "ok", "",
         decoded_like(lambda: photo(0), 12.0), ""),
        ("RGBA PNG", "bad.png", rgba, "ok", "", decoded_like(lambda: photo(0), 0.0),
         "alpha dropped, as timm"),
        ("1-bit BMP", "bad.bmp", lambda p: save(photo(0).convert("1"), p, "BMP"),
         "ok", "", None, ""),
        ("1x1 px", "bad.jpg", lambda p: save(photo(0).resize((1, 1)), p, "JPEG"),
         "ok", "", num_images(4), ""),
        ("decompression bomb (20000x20000 PNG header)", "bad.png", png_bomb,
         "error", "decompression", None, ""),
        ("animated GIF", "bad.gif", gif_animated, "ok", "", num_images(4), "first frame"),
        (".tif", "bad.tif", lambda p: save(photo(0), p, "TIFF"), "ok", "",
         decoded_like(lambda: photo(0), 0.0), ""),
        ("float TIFF (mode F)", "bad.tif", tif_float, "error", "32-bit floats", None, ""),
        ("int32 TIFF > 65535", "bad.tif", tif_int32, "error", "outside 0..65535", None, ""),
        (".webp", "bad.webp", lambda p: save(photo(0), p, "WEBP", lossless=True), "ok", "",
         decoded_like(lambda: photo(0), 0.0), ""),
        ("EXIF-rotated JPEG", "bad.jpg", exif_rotated, "ok", "",
         decoded_like(lambda: photo(0), 3.0), "orientation not applied, as timm/torchvision"),
        ("upper-case .JPG", "bad.JPG", lambda p: save(photo(0), p, "JPEG"), "ok", "",
         num_images(4), ""),
    ]
    cases = [
        Case(name, "image", FOLDER, expect, match,
             setup=lambda d, f=f, m=m: bad_image(d, f"{t}/{f}", m), check=check, note=note)
        for name, f, m, expect, match, check, note in rows
    ]

    def unicode_name(d: Path) -> None:
        bad_image(d, f"{t}/my photo é 東京.JPEG", lambda p: save(photo(0), p, "JPEG"))

    def unicode_check(res: Result, d: Path) -> str | None:
        from imagenet_multilabel.runs.rundir import read_predictions

        paths = list(read_predictions(res.out / "predictions" / "folder.npz")["path"])
        return None if f"{t}/my photo é 東京.JPEG" in paths else f"paths: {paths}"

    def symlink_loop(d: Path) -> None:
        folder(d / "val")
        (d / "val" / t / "a.JPEG").symlink_to(d / "val" / t / "b.JPEG")
        (d / "val" / t / "b.JPEG").symlink_to(d / "val" / t / "a.JPEG")

    def dangling(d: Path) -> None:
        folder(d / "val")
        (d / "val" / t / "gone.JPEG").symlink_to("/nonexistent/disk/x.JPEG")

    def dir_loop(d: Path) -> None:
        folder(d / "imgs")
        (d / "imgs" / "loop").symlink_to(d / "imgs")
        write(d / "labels.csv", "".join(f"{p.name},{wnid(p)}\n" for p in PHOTOS[:3]))

    def unreadable(d: Path) -> None:
        bad_image(d, f"{t}/bad.JPEG", lambda p: save(photo(0), p, "JPEG"))
        (d / "val" / t / "bad.JPEG").chmod(0)

    def fifo(d: Path) -> None:
        folder(d / "val")
        os.mkfifo(d / "val" / t / "pipe.JPEG")

    def other_files(d: Path) -> None:
        folder(d / "val")
        write(d / "val" / t / "README.txt", "notes")
        write(d / "val" / t / "labels.csv", "a,1")

    def empty_class(d: Path) -> None:
        folder(d / "val")
        (d / "val" / "n01443537").mkdir()

    def nested(d: Path) -> None:
        folder(d / "val")
        save(photo(0), d / "val" / t / "more" / "x.JPEG", "JPEG")

    def hidden_dir(d: Path) -> None:
        folder(d / "val")
        save(photo(0), d / "val" / ".ipynb_checkpoints" / "x.JPEG", "JPEG")
        write(d / "val" / t / ".DS_Store", b"\0\0\0\1Bud1")

    def dir_named_jpeg(d: Path) -> None:
        folder(d / "val")
        (d / "val" / t / "x.JPEG").mkdir()

    cases += [
        Case("file name with spaces and unicode", "image", FOLDER, "ok", setup=unicode_name,
             check=all_of(num_images(4), unicode_check)),
        Case("symlink loop a.JPEG <-> b.JPEG", "image", FOLDER, "error", "link",
             setup=symlink_loop),
        Case("dangling symlink (unmounted disk)", "image", FOLDER, "error", "link",
             setup=dangling),
        Case("folder symlink loop, data=files", "image",
             [TINY, "data=files", "data.root={d}/imgs", "data.labels_file={d}/labels.csv"],
             "ok", setup=dir_loop, check=num_images(3, "files")),
        Case("chmod 000 image (run as root: still readable)", "image", FOLDER, "ok",
             setup=unreadable, check=num_images(4),
             note="root reads it; as a user it is a decode error naming the file"
             if os.geteuid() == 0 else ""),
        Case("FIFO named .JPEG", "image", FOLDER, "ok", setup=fifo,
             check=all_of(num_images(3), logged("skipped")), note="skipped, not read"),
        Case("non-image files in a class folder", "image", FOLDER, "ok", setup=other_files,
             check=all_of(num_images(3), logged("skipped 2"))),
        Case("empty class folder", "image", FOLDER, "ok", setup=empty_class,
             check=all_of(num_images(3), logged("no images"))),
        Case("images in a nested folder", "image", FOLDER, "ok", setup=nested,
             check=all_of(num_images(3), logged("more"))),
        Case("hidden .ipynb_checkpoints folder and .DS_Store", "image", FOLDER, "ok",
             setup=hidden_dir, check=num_images(3)),
        Case("a folder named x.JPEG", "image", FOLDER, "ok", setup=dir_named_jpeg,
             check=all_of(num_images(3), logged("skipped"))),
        Case("empty dataset folder", "image", FOLDER, "error", "no images",
             setup=lambda d: (d / "val").mkdir()),
        Case("only empty class folders", "image", FOLDER, "error", "no images",
             setup=lambda d: (d / "val" / t).mkdir(parents=True)),
        Case("corrupt JPEG, 2 loader workers", "image", [*FOLDER, "num_workers=2"], "error",
             "cannot decode image", cli=True,
             setup=lambda d: bad_image(d, f"{t}/bad.JPEG", make(b"\xff\xd8\xff\xe0 cut"))),
    ]
    return cases


def _root_cases() -> list[Case]:
    """The bad ``data.root`` folders. Over 80 lines because it is one table, a case per
    folder (with the helpers that lay them out); cut in two, one kind of input would be
    listed in two places."""
    def non_wnid(d: Path) -> None:
        for name in ("cats", "dogs"):
            save(photo(0), d / "val" / name / "x.jpg", "JPEG")

    def int_folders(d: Path, names=("0", "100")) -> None:
        for i, name in enumerate(names):
            save(photo(i), d / "val" / name / f"x{i}.jpg", "JPEG")

    def val_names(d: Path, labels_file: bool = False) -> None:
        lines = []
        for i, p in enumerate(PHOTOS[:3]):
            name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
            shutil.copy(p, write(d / "val" / name, b""))
            lines.append(f"{name} {wnid(p)}\n")
        if labels_file:
            write(d / "val_labels.txt", "".join(lines))

    def v2_check(res: Result, d: Path) -> str | None:
        from imagenet_multilabel.runs.rundir import read_predictions

        data = read_predictions(res.out / "predictions" / "imagenetv2.npz")
        got = {str(p): int(t) for p, t in zip(data["path"], data["target"], strict=True)}
        want = {"0/x0.jpg": 0, "100/x1.jpg": 100}
        return None if got == want else f"targets {got}, expected {want}"

    def files_setup(labels: str, nested: bool = False):
        def setup(d: Path) -> None:
            for p in PHOTOS[:3]:
                shutil.copy(p, write(d / "imgs" / ("sub/" if nested else "") / p.name, b""))
            write(d / "labels.csv", labels)

        return setup

    names = [p.name for p in PHOTOS[:3]]
    files = [TINY, "data=files", "data.root={d}/imgs", "data.labels_file={d}/labels.csv"]
    v2 = [TINY, "data=imagenetv2", "data.root={d}/val", "labels=none"]
    return [
        Case("data.root missing", "root", [TINY, "data=folder", "data.root={d}/nope"],
             "error", "does not exist"),
        Case("data.root is a file", "root", [TINY, "data=folder", "data.root={d}/f.txt"],
             "error", "is a file, not a folder", setup=lambda d: write(d / "f.txt", "x")),
        Case("data=folder without data.root", "root", [TINY, "data=folder"], "error",
             "data.root="),
        Case("data.root= (empty)", "root", [TINY, "data=folder", "data.root="], "error",
             "data.root="),
        Case("data=folder, non-wnid folder names", "root", FOLDER, "error", "WordNet id",
             setup=non_wnid),
        Case("data=folder, wnid-named images directly in root", "root", FOLDER, "ok",
             setup=lambda d: flat(d / "val"), check=num_images(3),
             note="data=demo's layout, which data=imagenet's line suggests"),
        Case("data=folder, other images directly in root", "root", FOLDER, "error",
             "outside class folders", setup=lambda d: (folder(d / "val"),
                                                       write(d / "val" / "x.JPEG", b""))),
        Case("data=folder on int folders (the V2 layout)", "root", FOLDER, "error",
             "data=imagenetv2", setup=int_folders),
        Case("data=imagenet, flat non-val names", "root",
             [TINY, "data=imagenet", "data.root={d}/val"], "error", "ILSVRC2012_val",
             setup=lambda d: flat(d / "val")),
        Case("data=imagenet, flat val names, no labels", "root",
             [TINY, "data=imagenet", "data.root={d}/val"], "error", "data.devkit",
             setup=val_names),
        Case("data=imagenet, flat + val_labels.txt beside, labels=none", "root",
             [TINY, "data=imagenet", "data.root={d}/val", "labels=none"], "ok",
             setup=lambda d: val_names(d, True), check=num_images(3, "imagenet")),
        Case("data=imagenet, flat + val_labels.txt, labels=auto (ReaL)", "root",
             [TINY, "data=imagenet", "data.root={d}/val"], "ok",
             setup=lambda d: val_names(d, True), check=has_metric("imagenet/real_top1")),
        Case("data=imagenet, wnid folders of non-val names, labels=auto", "root",
             [TINY, "data=imagenet", "data.root={d}/val"], "error", "labels=none",
             setup=lambda d: folder(d / "val")),
        Case("data=imagenet, devkit not a devkit", "root",
             [TINY, "data=imagenet", "data.root={d}/val", "data.devkit={d}"], "error",
             "devkit", setup=val_names),
        Case("data=imagenetv2 on wnid folders", "root", v2, "error", "ImageNetV2",
             setup=lambda d: folder(d / "val")),
        Case("data=imagenetv2, folder 1000", "root", v2, "error", "0..999",
             setup=lambda d: int_folders(d, ("0", "1000"))),
        Case("data=imagenetv2, folder '0100'", "root", v2, "error", "0..999",
             setup=lambda d: int_folders(d, ("0", "0100"))),
        Case("data=imagenetv2, folders 0 and 100 (not sorted as strings)", "root", v2, "ok",
             setup=int_folders, check=v2_check),
        Case("data=imagenetv2, unknown variant", "root", [*v2, "data.variant=foo"], "error",
             "variant"),
        Case("data=imagenetv2, labels=auto on non-V2 files", "root",
             [TINY, "data=imagenetv2", "data.root={d}/val"], "error", "labels=none",
             setup=int_folders),
        Case("data=files without labels_file", "root",
             [TINY, "data=files", "data.root={d}/imgs"], "error", "data.labels_file",
             setup=files_setup("")),
        Case("data=files, labels_file missing", "root",
             [TINY, "data=files", "data.root={d}/imgs", "data.labels_file={d}/nope.csv"],
             "error", "does not exist", setup=files_setup("")),
        Case("data=files, labels_file names files that do not exist", "root", files, "ok",
             setup=files_setup("".join(f"{n},3\n" for n in names) + "ghost.jpg,4\n"),
             check=num_images(3, "files"), note="extra rows ignored"),
        Case("data=files, an image not in labels_file", "root", files, "error",
             "no label", setup=files_setup("".join(f"{n},3\n" for n in names[:2]))),
        Case("data=files, class as wnid", "root", files, "ok",
             setup=files_setup("".join(f"{n},{n.split('_')[0]}\n" for n in names)),
             check=all_of(num_images(3, "files"), has_metric("files/top1"))),
        Case("data=files, class as index", "root", files, "ok",
             setup=files_setup("".join(f"{n},{i}\n" for i, n in enumerate(names))),
             check=num_images(3, "files")),
        Case("data=files, class as name ('tench')", "root", files, "error",
             "WordNet id", setup=files_setup("".join(f"{n},tench\n" for n in names))),
        Case("data=files, nested folders", "root", files, "ok",
             setup=files_setup("".join(f"sub/{n},3\n" for n in names), nested=True),
             check=num_images(3, "files")),
        Case("data=files, two classes for one image", "root", files, "error",
             "exactly one", setup=files_setup("".join(f"{n},3 4\n" for n in names))),
    ]


def _label_cases() -> list[Case]:
    """The bad label files. Over 80 lines because it is one table, a case per file (with the
    helpers that write them); cut in two, one kind of input would be listed in two places."""
    names = [p.name for p in PHOTOS[:3]]
    wn = [wnid(p) for p in PHOTOS[:3]]

    def labels(content: str | bytes, suffix: str = ".csv"):
        def setup(d: Path) -> None:
            folder(d / "val")
            write(d / f"labels{suffix}", content)

        return setup

    def use(suffix: str = ".csv", *extra: str) -> list[str]:
        return [*FOLDER, "labels=file", f"labels.path={{d}}/labels{suffix}", *extra]

    multi = has_metric("folder/real_top1")

    def recorded(key: str, value: int):
        def check(res: Result, d: Path) -> str | None:
            info = json.loads((res.out / "run.json").read_text())["datasets"]["folder"]
            return None if info.get(key) == value else f"run.json {key}={info.get(key)}"

        return check

    csv_rows = "".join(f"{n},{w}\n" for n, w in zip(names, wn, strict=True))
    j = json.dumps
    return [
        Case("labels.path missing", "labels", use(".csv"), "error", "does not exist",
             setup=lambda d: folder(d / "val")),
        Case("labels.path is a folder", "labels",
             [*FOLDER, "labels=file", "labels.path={d}/val"], "error", "folder",
             setup=lambda d: folder(d / "val")),
        Case("empty CSV", "labels", use(), "error", "empty", setup=labels("")),
        Case("empty .json", "labels", use(".json"), "error", "JSON", setup=labels("", ".json")),
        Case("binary file as CSV", "labels", use(), "error", "UTF-8",
             setup=labels(bytes(range(256)))),
        Case(".xlsx (a zip)", "labels", use(".xlsx"), "error", "neither JSON nor CSV",
             setup=labels(b"PK\x03\x04 zip", ".xlsx")),
        Case("JSON, duplicate keys", "labels", use(".json"), "error", "twice",
             setup=labels(f'{{"{names[0]}": 1, "{names[0]}": 2}}', ".json")),
        Case("CSV, duplicate rows", "labels", use(), "error", "twice",
             setup=labels(csv_rows + f"{names[0]},5\n")),
        Case("keys not in the dataset", "labels", use(), "error", "label set 'file' has none",
             setup=labels("a.jpg,1\nb.jpg,2\n")),
        Case("an image not in the label file", "labels", use(), "error", "allow_missing",
             setup=labels(csv_rows.split("\n", 1)[1])),
        Case("an image not in the label file, allow_missing", "labels",
             use(".csv", "labels.allow_missing=true"), "ok",
             setup=labels(csv_rows.split("\n", 1)[1]),
             check=all_of(multi, recorded("num_missing_from_labels", 1))),
        Case("labels.allow_missing=maybe", "labels", use(".csv", "labels.allow_missing=maybe"),
             "error", "allow_missing", setup=labels(csv_rows)),
        Case("no image in the label file, allow_missing", "labels",
             use(".csv", "labels.allow_missing=true"), "error", "none of",
             setup=labels("a.jpg,1\n")),
        Case("index 1000", "labels", use(), "error", "0..999",
             setup=labels(csv_rows + "x.jpg,1000\n")),
        Case("index -1 (CSV)", "labels", use(), "error", "-1",
             setup=labels(csv_rows.replace(wn[0], "-1"))),
        Case("index -1 (JSON)", "labels", use(".json"), "error", "0..999",
             setup=labels(j({names[0]: -1}), ".json")),
        Case("unknown wnid", "labels", use(), "error", "WordNet id",
             setup=labels(csv_rows.replace(wn[0], "n99999999"))),
        Case("labels as strings \"3\"", "labels", use(".json"), "ok", check=multi,
             setup=labels(j({n: ["3", "7"] for n in names}), ".json")),
        Case("labels as floats 3.0 (JSON)", "labels", use(".json"), "ok", check=multi,
             setup=labels(j({n: [3.0, 7.0] for n in names}), ".json")),
        Case("labels as \"3.0\" (CSV from pandas)", "labels", use(), "ok", check=multi,
             setup=labels("".join(f"{n},3.0\n" for n in names))),
        Case("label 3.5", "labels", use(".json"), "error", "3.5",
             setup=labels(j({n: [3.5] for n in names}), ".json")),
        Case("nested lists [[3]]", "labels", use(".json"), "error", "[3]",
             setup=labels(j({n: [[3]] for n in names}), ".json")),
        Case("null label", "labels", use(".json"), "error", "None",
             setup=labels(j({n: None for n in names}), ".json")),
        Case("JSON list at top level", "labels", use(".json"), "error", "object",
             setup=labels(j([[3]] * 3), ".json")),
        Case("spreadsheet: BOM + CRLF + header", "labels", use(), "ok", check=multi,
             setup=labels(("\ufefffile,label\r\n" + csv_rows.replace("\n", "\r\n")).encode())),
        Case("spreadsheet: ';' separator, quoted cells", "labels", use(), "ok", check=multi,
             setup=labels("".join(f'"{n}";"{w} 7"\n' for n, w in zip(names, wn, strict=True)))),
        Case("spreadsheet: trailing empty columns", "labels", use(), "ok", check=multi,
             setup=labels("file,label,,\n" + csv_rows.replace("\n", ",,\n"))),
        Case("spreadsheet: Excel 'sep=;' first line", "labels", use(), "ok", check=multi,
             setup=labels("sep=;\nfile;label\n" + csv_rows.replace(",", ";"))),
        Case("spreadsheet: TSV", "labels", use(".tsv"), "ok", check=multi,
             setup=labels(csv_rows.replace(",", "\t"), ".tsv")),
        Case("spreadsheet: Latin-1 file name", "labels", use(), "error", "UTF-8",
             setup=labels((csv_rows + "café.jpg,3\n").encode("latin-1"))),
        Case("empty label list -> unlabeled", "labels", use(".json"), "ok",
             setup=labels(j({n: ([] if i == 0 else [3]) for i, n in enumerate(names)}), ".json"),
             check=all_of(multi, recorded("num_empty_label_sets", 1))),
        Case("keys are relative paths", "labels", use(".json"), "ok", check=multi,
             setup=labels(j({f"{w}/{n}": [3] for n, w in zip(names, wn, strict=True)}),
                          ".json")),
        Case("space-separated multi-labels in CSV", "labels", use(), "ok", check=multi,
             setup=labels("".join(f"{n},{w} 7 8\n" for n, w in zip(names, wn, strict=True)))),
        Case("labels=real with a 10-entry file (wrong count)", "labels",
             [*FOLDER, "labels=real", "labels.path={d}/labels.json"], "error", "50000",
             setup=labels(j([[1]] * 10), ".json")),
        Case("labels=multilabelfy with a list file", "labels",
             [*FOLDER, "labels=multilabelfy", "labels.path={d}/labels.json"], "error",
             "Multilabelfy", setup=labels(j([1]), ".json")),
    ]


def _config_cases() -> list[Case]:
    """The bad settings. Over 80 lines because it is one table, a case per setting (with the
    helpers that lay out their data); cut in two, one kind of input would be listed in
    two places."""
    def val_named(d: Path) -> None:
        for i, p in enumerate(PHOTOS[:3]):
            shutil.copy(p, write(d / "val" / wnid(p) / f"ILSVRC2012_val_{i + 1:08d}.JPEG", b""))

    def no_real(res: Result, d: Path) -> str | None:
        keys = [k for k in res.metrics() if "real_" in k]
        return f"label metrics despite labels=none: {keys[:2]}" if keys else None

    setup = lambda d: folder(d / "val")  # noqa: E731
    rows = [
        ("batch_size=0", "batch_size"), ("batch_size=-1", "batch_size"),
        ("batch_size=abc", "batch_size"), ("batch_size=1.5", "batch_size"),
        ("num_workers=-1", "num_workers"), ("cpu_threads=0", "cpu_threads"),
        ("prefetch_factor=0", "prefetch_factor"), ("preprocess.crop_pct=0", "crop_pct"),
        ("preprocess.crop_pct=1.5", "crop_pct"), ("preprocess.img_size=-5", "img_size"),
        ("preprocess.interpolation=foo", "interpolation"),
        ("preprocess.input_size=[3,0,0]", "input_size"), ("preprocess.mean=[0.5]", "mean"),
        ("preprocess.std=[0,1,1]", "std"), ("preprocess.crop_mode=foo", "crop_mode"),
        ("predictions.logits_dtype=int8", "logits_dtype"), ("cpu_parallel=foo", "cpu_parallel"),
        ("head=multilabel", "label set"), ("head.multilabel.mode=foo", "mode"),
        ("head.multilabel.scores=foo", "scores"), ("labels=file", "labels.path"),
        ("labels=shankar", "labels.path"), ("seed=abc", "seed"),
        ("channels_last=maybe", "channels_last"), ("compile=yes", "compile"),
        ("normalize_on_device=0.5", "normalize_on_device"),
        ("trainer.devices=0", "devices"), ("trainer.accelerator=gpu", "gpu"),
        ("trainer.precision=foo", "precision"), ("trainer.precision=16-mixed", "needs a GPU"),
        ("model.name=resnet5", "close matches"), ("model.name=resnet50.no_such_tag", "tag"),
        ("model.weights=foo", "model.weights"), ("+model.kwargs.num_classes=10", "10 classes"),
        ("model.name=vit_tiny_patch16_224.augreg_in21k", "21843"),
        ("model.checkpoint={d}/nope.pth", "does not exist"),
        ("optimized_metric=folder/top_1", "did you mean 'top1'"),
    ]
    cases = [
        Case(arg.replace("{d}/", ""), "config", [*FOLDER, arg], "error", match, setup=setup)
        for arg, match in rows
    ]

    def ckpt(make):
        def build(d: Path) -> None:
            import timm
            import torch

            folder(d / "val")
            torch.save(make(timm, torch), d / "ckpt.pth")

        return build

    cases += [
        Case("labels=shankar labels.path=<missing>", "config",
             [*FOLDER, "labels=shankar", "labels.path={d}/h.pickle"], "error",
             "does not exist", setup=setup),
        Case("labels=real on data=folder (files not ReaL's)", "config",
             [*FOLDER, "labels=real"], "error", "label set 'real'", setup=setup),
        Case("labels=real allow_missing on files not ReaL's", "config",
             [*FOLDER, "labels=real", "labels.allow_missing=true"], "error", "none of",
             setup=setup),
        Case("labels=real on data=folder of ReaL's val names", "config",
             [*FOLDER, "labels=real"], "ok", setup=val_named, check=has_metric("folder/real_top1")),
        Case("labels=none on data=imagenet layout", "config",
             [TINY, "data=imagenet", "data.root={d}/val", "labels=none"], "ok", setup=val_named,
             check=no_real),
        Case("labels=multilabelfy on data=imagenet", "config",
             [TINY, "data=imagenet", "data.root={d}/val", "labels=multilabelfy"], "error",
             "label set 'multilabelfy'", setup=val_named),
        Case("checkpoint: random bytes", "config", [*FOLDER, "model.checkpoint={d}/ckpt.pth"],
             "error", "is damaged",
             setup=lambda d: (folder(d / "val"), write(d / "ckpt.pth", b"\x80\x02junk"))),
        Case("checkpoint: other architecture", "config",
             [*FOLDER, "model.checkpoint={d}/ckpt.pth"], "error", "do not fit",
             setup=ckpt(lambda timm, torch: timm.create_model("test_resnet").state_dict())),
        Case("checkpoint: 10 classes", "config", [*FOLDER, "model.checkpoint={d}/ckpt.pth"],
             "error", "size mismatch", setup=ckpt(
                 lambda timm, torch: timm.create_model("test_efficientnet", num_classes=10)
                 .state_dict())),
        Case("checkpoint: a pickled list", "config", [*FOLDER, "model.checkpoint={d}/ckpt.pth"],
             "error", "no state dict", setup=ckpt(lambda timm, torch: [1, 2, 3])),
        Case("checkpoint: a whole pickled nn.Module", "config",
             [*FOLDER, "model.checkpoint={d}/ckpt.pth"], "error", "state_dict",
             setup=ckpt(lambda timm, torch: timm.create_model("test_efficientnet"))),
        Case("checkpoint: Lightning checkpoint of this module", "config",
             [*FOLDER, "model.checkpoint={d}/ckpt.pth"], "ok", setup=ckpt(
                 lambda timm, torch: {"state_dict": {
                     f"backbone.{k}": v
                     for k, v in timm.create_model("test_efficientnet").state_dict().items()}}),
             check=num_images(3)),
        Case("ViT on composites without dynamic_img_size", "config",
             [TINY, "model.name=vit_tiny_patch16_224", "data=patchml", "data.num_images=2"],
             "error", "dynamic_img_size"),
        Case("composites: num_images=0", "config",
             [TINY, "data=patchml", "data.num_images=0"], "error", "num_images"),
        Case("composites: num_images=-1", "config",
             [TINY, "data=patchml", "data.num_images=-1"], "error", "num_images"),
        Case("composites: 3x2 tiles", "config",
             [TINY, "data=patchml", "data.rows=3"], "error", "2 to 4 tiles"),
        Case("output folder under a file (in-process)", "config",
             [*FOLDER, "hydra.run.dir=/etc/passwd/x"], "error", "cannot write", setup=setup),
    ]
    return cases


def _rerun_cases() -> list[Case]:
    def finished(d: Path) -> None:
        folder(d / "val")
        (d / "out").mkdir()
        write(d / "out" / "metrics.json", json.dumps({"folder/top1": 99.0}))

    return [
        Case("rerun into a finished run, fails in preflight", "output",
             [*FOLDER, "batch_size=0"], "error", "batch_size", setup=finished),
        Case("rerun into a finished run, fails on data", "output",
             [TINY, "data=folder", "data.root={d}/nope"], "error", "does not exist",
             setup=finished),
        Case("rerun into a finished run, bad model name", "output",
             [*FOLDER, "model.name=resnet5"], "error", "resnet5", cli=True, setup=finished),
        Case("run folder under a file", "output",
             [*FOLDER, "hydra.run.dir=/etc/passwd/x"], "error", "cannot write", cli=True,
             setup=lambda d: folder(d / "val")),
        Case("logger=[csv,wandb], <run>/wandb a file", "output",
             [*FOLDER, "logger=[csv,wandb]", "logger.wandb.offline=true", "hydra.run.dir={d}/r"],
             "error", "is a file", cli=True,
             setup=lambda d: (folder(d / "val"), write(d / "r" / "wandb", "x"))),
        Case("run folder held by a running evaluation", "output",
             [*FOLDER, "hydra.run.dir={d}/r"], "error", "is held by another run", cli=True,
             setup=lambda d: (folder(d / "val"), _hold_live(d / "r"))),
        Case("run folder is an existing file", "output",
             [*FOLDER, "hydra.run.dir={d}/file"], "error", "hydra.run.dir", cli=True,
             setup=lambda d: (folder(d / "val"), write(d / "file", "x"))),
    ]


def _hold_live(folder_: Path) -> None:
    """A live process holding ``folder_`` (runs/lock.py), for the case's duration."""
    from imagenet_multilabel.runs.lock import LOCK_FILE, _start_time

    holder = subprocess.Popen(["sleep", "120"])
    write(folder_ / LOCK_FILE, json.dumps({
        "pid": holder.pid, "host": socket.gethostname(),
        "process_started": _start_time(holder.pid), "started": "2026-01-01 00:00:00"}))


def _score_cases() -> list[Case]:
    """The bad inputs of ``score``. Over 80 lines because it is one table, a case per input
    (with the helpers that spoil a finished run); cut in two, one command's cases would be
    listed in two places."""
    def copy_run(src: str, mutate: Callable[[Path], None]):
        def setup(d: Path) -> None:
            shutil.copytree(SHARED_RUNS[src], d / "run")
            mutate(d / "run")

        return setup

    def npz(run: Path) -> Path:
        return next((run / "predictions").glob("*.npz"))

    def two_datasets(run: Path) -> None:
        data = json.loads((run / "metrics.json").read_text())
        data.update({k.replace("folder/", "other/"): v for k, v in data.items()})
        (run / "metrics.json").write_text(json.dumps(data))

    def no_label_metrics(res: Result, d: Path) -> str | None:
        keys = [k for k in res.metrics() if "real_" in k]
        return f"labels=none still scored {keys[:1]}" if keys else None

    score = "score"
    return [
        Case("score without run_dir", "score", [], "error", "run_dir", tool=score),
        Case("score run_dir missing", "score", ["run_dir={d}/nope"], "error", "does not exist",
             tool=score),
        Case("score run_dir is a file", "score", ["run_dir={d}/f"], "error", "not a folder",
             tool=score, setup=lambda d: write(d / "f", "x")),
        Case("score: run not finished", "score", ["run_dir={d}/run"], "error", "did not finish",
             tool=score, setup=copy_run("run", lambda r: (r / "metrics.json").unlink())),
        Case("score: predictions corrupt", "score", ["run_dir={d}/run"], "error", "corrupt",
             tool=score, setup=copy_run("run", lambda r: write(npz(r), b"garbage"))),
        Case("score: predictions truncated", "score", ["run_dir={d}/run"], "error", "corrupt",
             tool=score,
             setup=copy_run("run", lambda r: write(npz(r), npz(r).read_bytes()[:3000]))),
        Case("score: no predictions", "score", ["run_dir={d}/run"], "error", "predictions",
             tool=score, setup=copy_run("run", lambda r: shutil.rmtree(r / "predictions"))),
        Case("score: metrics.json corrupt", "score", ["run_dir={d}/run"], "error", "JSON",
             tool=score, setup=copy_run("run", lambda r: write(r / "metrics.json", "{"))),
        Case("score: metrics.json of an older version", "score", ["run_dir={d}/run"], "error",
             "older version", tool=score,
             setup=copy_run("run", lambda r: write(r / "metrics.json", '{"top1": 1.0}'))),
        Case("score: output folder = the run's folder", "score",
             ["run_dir={run}", "hydra.run.dir={run}"], "error", "own folder", tool=score),
        Case("score labels=real on a run of non-ReaL files", "score",
             ["run_dir={run}", "labels=real"], "error", "label set 'real'", tool=score),
        Case("score labels=file (used)", "score",
             ["run_dir={run}", "labels=file", "labels.path={labels}"], "ok", tool=score,
             check=has_metric("folder/real_top1")),
        Case("score labels=none on a labelled run", "score", ["run_dir={lrun}", "labels=none"],
             "ok", tool=score, check=no_label_metrics),
        Case("score dataset=nope", "score", ["run_dir={run}", "dataset=nope"], "error",
             "nope", tool=score),
        Case("score head=multilabel on a run without labels", "score",
             ["run_dir={run}", "head=multilabel"], "error", "label set", tool=score),
        Case("score: rerun into a finished score folder, fails", "score",
             ["run_dir={d}/nope"], "error", "does not exist", tool=score,
             setup=lambda d: write(d / "out" / "metrics.json", '{"folder/top1": 1}')),
        Case("score: predictions of another run pasted in", "score", ["run_dir={d}/run"],
             "error", "predictions", tool=score,
             setup=copy_run("run", lambda r: write(npz(r), _short_npz()))),
        Case("gap without b", "gap", ["a={run}"], "error", "b=", tool="gap"),
        Case("gap a missing", "gap", ["a={d}/nope", "b={run}"], "error", "does not exist",
             tool="gap"),
        Case("gap over runs without label sets", "gap", ["a={run}", "b={run}"], "error",
             "label set", tool="gap"),
        Case("gap over two labelled runs", "gap", ["a={lrun}", "b={lrun}"], "ok", tool="gap"),
        Case("gap: a has two datasets, no a_dataset", "gap", ["a={d}/run", "b={lrun}"], "error",
             "choose one", tool="gap", setup=copy_run("lrun", two_datasets)),
        Case("gap a_dataset=nope", "gap", ["a={lrun}", "b={lrun}", "a_dataset=nope"], "error",
             "nope", tool="gap"),
        Case("stats compare=[foo]", "stats", ["compare=[foo]"], "error", "foo", tool="stats"),
        Case("stats labels=none", "stats", ["labels=none"], "error", "label set", tool="stats"),
        Case("stats labels=file, path missing", "stats",
             ["labels=file", "labels.path={d}/nope.json"], "error", "does not exist",
             tool="stats"),
        Case("stats labels=shankar without path", "stats", ["labels=shankar"], "error",
             "labels.path", tool="stats"),
        Case("stats labels=file", "stats", ["labels=file", "labels.path={labels}"], "ok",
             tool="stats"),
        Case("stats data=folder, root missing", "stats",
             ["labels=file", "labels.path={labels}", "data=folder", "data.root={d}/nope"],
             "error", "does not exist", tool="stats"),
        Case("stats labels=real over a folder of non-ReaL files", "stats",
             ["labels=real", "data=folder", "data.root={val}"], "error", "real",
             tool="stats"),
    ]


def _short_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, index=np.arange(2), path=np.array(["a.jpg", "b.jpg"]),
             target=np.zeros(2, dtype=np.int64), logits=np.zeros((2, 1000), np.float32))
    return buf.getvalue()


def _prepare_cases() -> list[Case]:
    def archive(d: Path) -> None:
        write(d / "v2.tar.gz", b"not a tar archive")

    def val(d: Path) -> None:
        for i, p in enumerate(PHOTOS[:3]):
            shutil.copy(p, write(d / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG", b""))
        write(d / "val_labels.txt", "".join(
            f"ILSVRC2012_val_{i + 1:08d}.JPEG {wnid(p)}\n" for i, p in enumerate(PHOTOS[:3])))

    p = "prepare"
    return [
        Case("prepare imagenet --root missing", p, ["imagenet", "--root", "{d}/nope"], "error",
             "no ILSVRC2012 val folder", tool=p),
        Case("prepare imagenet --root a file", p, ["imagenet", "--root", "{d}/f"], "error",
             "is a file", tool=p, setup=lambda d: write(d / "f", "x")),
        Case("prepare imagenet, flat + val_labels.txt", p, ["imagenet", "--root", "{d}/val"],
             "ok", tool=p, setup=val),
        Case("prepare imagenetv2 --archive missing", p,
             ["imagenetv2", "--root", "{d}/v2", "--archive", "{d}/nope.tar.gz"], "error",
             "does not exist", tool=p),
        Case("prepare imagenetv2 --archive not a tar", p,
             ["imagenetv2", "--root", "{d}/v2", "--archive", "{d}/v2.tar.gz"], "error",
             "not the published archive", tool=p, setup=archive),
        Case("prepare imagenetv2 offline", p, ["imagenetv2", "--root", "{d}/v2"], "error",
             "offline", tool=p),
        Case("prepare imagenetv2, no network (HF_HUB_OFFLINE unset)", p,
             ["imagenetv2", "--root", "{d}/v2", "--timeout", "10"], "error", "download",
             tool=p, env={"HF_HUB_OFFLINE": ""}),
        Case("prepare imagenetv2 --root under a file", p,
             ["imagenetv2", "--root", "/etc/passwd/x", "--archive", "{d}/v2.tar.gz"], "error",
             "/etc/passwd", tool=p, setup=archive),
        Case("prepare imagenetv2 --variant foo", p,
             ["imagenetv2", "--root", "{d}/v2", "--variant", "foo"], "nonzero", "", tool=p,
             note="argparse's usage + error, exit 2"),
    ]


def _cli_cases() -> list[Case]:
    big = [TINY, "data=folder", "data.root={d}/val", "batch_size=2", "cpu_threads=1",
           "num_workers=1"]

    def spaces(d: Path) -> None:
        folder(d / "my photos")

    return [
        Case("model=typo (config group option)", "hydra", ["model=resnet5"], "error",
             "model", cli=True),
        Case("unknown key batchsize=16", "hydra", [TINY, "batchsize=16"], "error",
             "batchsize", cli=True),
        Case("data.root with a space", "hydra", [TINY, "data=folder", "data.root={d}/my photos"],
             "ok", cli=True, setup=spaces, check=num_images(3)),
        Case("data.root with parentheses and a comma", "hydra",
             [TINY, "data=folder", "data.root={d}/photos (2024), v2"], "error", "data.root",
             cli=True, setup=lambda d: folder(d / "photos (2024), v2")),
        Case("model=resnet50, HF_HUB_OFFLINE=1, not cached", "model", ["model=resnet50"],
             "error", "no pretrained weights", cli=True),
        Case("model=resnet50, online but no network", "model", ["model=resnet50"], "error",
             "no pretrained weights", cli=True, env={"HF_HUB_OFFLINE": ""}, timeout=300),
        Case("SIGTERM during start-up", "signal", big, "sigterm", "SIGTERM", cli=True,
             setup=many, action=signal_when(signal.SIGTERM, started, delay=0.2)),
        Case("SIGTERM mid-run", "signal", big, "sigterm", "SIGTERM", cli=True, setup=many,
             action=signal_when(signal.SIGTERM, loading(1))),
        Case("SIGTERM mid-run, 3 loader workers", "signal", [*big, "num_workers=3"],
             "sigterm", "SIGTERM", cli=True, setup=many,
             action=signal_when(signal.SIGTERM, loading(3))),
        Case("Ctrl-C (SIGINT to the group) mid-run", "signal", big, "sigint", "SIGINT", cli=True,
             setup=many, action=signal_when(signal.SIGINT, loading(1), group=True)),
        Case("SIGKILL mid-run", "signal", big, "nonzero", "", cli=True, setup=many,
             action=signal_when(signal.SIGKILL, loading(1)), note="no metrics.json"),
    ]


def many(d: Path) -> None:
    """300 images (the demo photos 3 times): a run of several seconds."""
    folder(d / "val", n=100)
    for photo_path in PHOTOS:
        for copy in (1, 2):
            dest = d / "val" / wnid(photo_path) / f"copy{copy}_{photo_path.name}"
            shutil.copy(photo_path, dest)


def _ddp_cases() -> list[Case]:
    ddp = [TINY, "data=folder", "data.root={d}/val", "trainer=ddp", "trainer.accelerator=cpu",
           "trainer.devices=2", "batch_size=2", "cpu_threads=1", "num_workers=1"]

    def corrupt(d: Path) -> None:
        folder(d / "val", n=12)
        write(d / "val" / "n01440764" / "zz_bad.JPEG", b"\xff\xd8\xff broken")

    # rank 1 and a loader worker of each rank
    return [
        Case("DDP x2, corrupt image on one rank", "ddp", ddp, "error", "cannot decode image",
             cli=True, setup=corrupt, timeout=300),
        Case("DDP x2, SIGTERM to rank 0", "ddp", ddp, "sigterm", "SIGTERM", cli=True,
             setup=many, action=signal_when(signal.SIGTERM, loading(3)), timeout=300,
             note="the lead's"),
        Case("DDP x2, SIGTERM to the group", "ddp", ddp, "sigterm", "SIGTERM", cli=True,
             setup=many, action=signal_when(signal.SIGTERM, loading(3), group=True),
             timeout=300, note="the lead's"),
    ]


SHARED_RUNS: dict[str, Path] = {}


def all_cases() -> list[Case]:
    return [
        *_image_cases(),
        *_root_cases(),
        *_label_cases(),
        *_config_cases(),
        *_rerun_cases(),
        *_score_cases(),
        *_prepare_cases(),
        *_cli_cases(),
        *_ddp_cases(),
    ]
# fmt: on


def finished_runs(tmp: Path) -> dict[str, Path]:
    """Two finished runs to score: plain, and with a label set (labels=file)."""
    root = folder(tmp / "shared" / "val", n=4)
    labels = {p.name: [wnid(p), wnid(PHOTOS[(i + 1) % len(PHOTOS)])] for i, p in enumerate(PHOTOS)}
    write(tmp / "shared" / "labels.json", json.dumps(labels))
    runs = {}
    for key, extra in (
        ("run", []),
        ("lrun", ["labels=file", f"labels.path={tmp / 'shared' / 'labels.json'}"]),
    ):
        d = tmp / "shared" / key
        case = Case(key, "-", [TINY, "data=folder", f"data.root={root}", *extra], "ok")
        res = run_inproc(case, case.args, d)
        if res.code != 0:
            raise SystemExit(f"could not make the finished run {key}: {res.stderr[-2000:]}")
        runs[key] = d / "out"
    runs["labels"] = tmp / "shared" / "labels.json"
    runs["val"] = root
    return runs


def main() -> None:
    trial(all_cases, finished_runs, __doc__)


def trial(
    make_cases: Callable[[], list[Case]],
    make_shared: Callable[[Path], dict[str, Path]],
    doc: str,
) -> None:
    """Run the cases of ``make_cases`` (``make_shared``: what they share, e.g. finished runs)
    and print the table."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--only", help="run the cases whose name contains one of these (a,b)")
    parser.add_argument("--no-cli", action="store_true", help="skip command-line cases")
    parser.add_argument("--cli-only", action="store_true", help="only command-line cases")
    parser.add_argument("--keep", help="build the cases in this folder and keep it")
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = Path(args.keep).resolve()
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="badinput-")))
        shared = make_shared(tmp)
        SHARED_RUNS.update(shared)
        only = args.only.split(",") if args.only else []
        cases = [c for c in make_cases() if not only or any(o in c.name for o in only)]
        if args.no_cli or args.cli_only:
            cases = [c for c in cases if c.cli == args.cli_only]
        rows, bad = [], 0
        tally = {"right": 0, "wrong": 0, "silently wrong": 0}
        print("| # | case | command | exit | error line | verdict |")
        print("|---|---|---|---|---|---|")
        for number, case in enumerate(cases, start=1):
            try:
                res, verdict, command = run_case(case, number, tmp, shared)
            except Exception as e:  # a broken case must not end the trial
                res, verdict, command = Result(-1, str(e)), f"**CASE FAILED** {e!r}", "-"
            bad += verdict.startswith("**")
            if not verdict.startswith("**"):
                tally["right"] += 1
            else:
                tally["silently wrong" if res.code == 0 else "wrong"] += 1
            line = res.line.replace(str(tmp), "$T") if res.code else ""
            row = (
                f"| {number} | {case.group}: {case.name} | `{cell(command, 150)}` | {res.code} | "
                f"{cell(line, 150)} | {cell(verdict, 120)} |"
            )
            rows.append(row)
            print(row, flush=True)
            print(f"  ({res.seconds:.1f} s)", file=sys.stderr, flush=True)
            if case.expect == "error" and res.code == 2:
                TIMES[f"{case.group}: {case.name}"] = res.seconds
        took = time.perf_counter() - started
        print(f"\n{len(cases)} cases, {bad} handled badly, {took:.0f} s")
        print(", ".join(f"{k} {v}" for k, v in tally.items()) + " (silently: exit 0)")
        groups: dict[str, int] = {}
        for case in cases:
            groups[case.group] = groups.get(case.group, 0) + 1
        print("by family: " + ", ".join(f"{g} {n}" for g, n in groups.items()))
        slowest = max(TIMES.items(), key=lambda kv: kv[1], default=None)
        if slowest:
            print(f"slowest error line: {slowest[0]} ({slowest[1]:.1f} s)")


if __name__ == "__main__":
    main()

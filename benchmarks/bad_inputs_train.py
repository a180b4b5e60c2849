"""A trial of bad inputs for train.py, on the machinery of bad_inputs.py (cases, runners,
judging, the table): every setting of conf/train.yaml given values of the wrong type, out
of range, unknown names and bad combinations; damaged checkpoints and feature caches;
another run's checkpoint; weights that become NaN; a few legal but surprising values.

    python benchmarks/bad_inputs_train.py [--only SUBSTRING] [--no-cli] [--keep DIR]

Expected of every bad input: one line ``error: ...``, exit code 2, no traceback, no
metrics.json. A config error is refused before torch is imported on the command line
(``(in-process)`` cases call the task through ``run_task`` (entry/run.py) as train.py does). About
5 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bad_inputs import (
    ABBREVIATIONS,
    REPO,
    TINY,
    Case,
    Result,
    all_of,
    logged,
    run_inproc,
    signal_when,
    trial,
    write,
)

# one epoch of 2 steps on the demo photos (80 trained classes, 20 held out)
BASE = [
    TINY,
    "logger=none",
    "trainer.max_epochs=1",
    "composites.train_images=16",
    "composites.eval_images=8",
    "batch_size=8",
    "train_batch_size=8",
]

ABBREVIATIONS[" ".join(BASE)] = "$BASE"

# setting -> (the values to try, a part of the line); ints must be whole, floats finite
WHOLE = {
    "train_batch_size": 1,
    "batch_size": 1,
    "num_workers": 0,
    "seed": 0,
    "split.seed": 0,
    "split.heldout_classes": 0,
    "composites.train_images": 1,
    "composites.eval_images": 1,
    "composites.seed": 0,
    "finetune.last_n": 1,
    "sched.warmup_steps": 0,
    "sched.total_steps": 1,
    "trainer.accumulate_grad_batches": 1,
    "trainer.log_every_n_steps": 1,
    "checkpoint.every_n_steps": 1,
}
REAL = {
    "optim.lr": (0, None),
    "optim.weight_decay": (0, None),
    "optim.layer_decay": (0, 1),
    "split.heldout_fraction": (0, 1),
    "regularize.l2_to_pretrained": (0, None),
    "sched.lr_min": (0, None),
    "sched.warmup_lr_init": (0, None),
    "trainer.gradient_clip_val": (0, None),
    "augment.hflip": (0, 1),
    "augment.color_jitter": (0, None),
    "loss.keep_unseen": (0, 1),
}
NAMES = {
    "finetune.mode": "foo",
    "sched.name": "step",
    "optim.opt": "foo",
    "final_eval": "both",
    "checkpoint.mode": "best",
    "regularize.train_rows": "some",
    "augment.interpolation": "cubic",
    "augment.auto_augment": "magic",
    "cpu_parallel": "threads",
    "predictions.logits_dtype": "int8",
    "trainer.precision": "8-true",
    "trainer.accelerator": "quantum",
    "checkpoint.monitor": "bogus",
    "validate_on": "[bogus]",
    "optimized_metric": "bogus/metric",
}
SWITCHES = (
    "drop_last",
    "composites.enabled",
    "finetune.cache_features",
    "augment.enabled",
    "early_stopping.enabled",
    "channels_last",
    "normalize_on_device",
    "pin_memory",
)


def _config_cases() -> list[Case]:
    cases = []
    for key, low in WHOLE.items():
        values = ["-1" if low >= 0 else "-2", "2.5", "abc", "true"]
        if low == 1:
            values.append("0")
        cases += [Case(f"{key}={v}", "whole", [*BASE, f"{key}={v}"], match=key) for v in values]
    for key, (_low, high) in REAL.items():
        values = ["-1", "abc", "inf", "nan", "true"]
        if high is not None:
            values.append(str(high + 1))
        cases += [Case(f"{key}={v}", "real", [*BASE, f"{key}={v}"], match=key) for v in values]
    cases += [
        Case(f"{key}={v}", "name", [*BASE, f"{key}={v}"], match=key.split(".")[0])
        for key, v in NAMES.items()
    ]
    cases += [
        Case(f"{key}=maybe", "switch", [*BASE, f"{key}=maybe"], match=key) for key in SWITCHES
    ]
    return cases


def _combination_cases() -> list[Case]:
    """Settings that are bad together. Over 80 lines because it is one table, a case per
    combination; cut in two, one kind of input would be listed in two places."""
    c = "combination"
    return [
        Case(
            "composites 3x3",
            c,
            [*BASE, "composites.rows=3", "composites.cols=3"],
            match="composites.rows=3 composites.cols=3",
        ),
        Case(
            "composites 1x1",
            c,
            [*BASE, "composites.rows=1", "composites.cols=1"],
            match="composites.rows=1",
        ),
        Case("trainer.max_epochs=0", c, [*BASE, "trainer.max_epochs=0"], match="max_epochs=0"),
        Case("trainer.max_steps=0", c, [*BASE, "trainer.max_steps=0"], match="max_steps=0"),
        Case(
            "no limit (max_epochs=-1, max_steps=-1)",
            c,
            [*BASE, "trainer.max_epochs=-1"],
            match="both unlimited",
        ),
        Case(
            "warmup >= total_steps",
            c,
            [*BASE, "sched.total_steps=3", "sched.warmup_steps=3"],
            match="sched.warmup_steps=3",
        ),
        Case(
            "early stopping without a monitor",
            c,
            [*BASE, "early_stopping.enabled=true", "checkpoint.monitor=null"],
            match="early_stopping needs a metric",
        ),
        Case(
            "early stopping without validation",
            c,
            [*BASE, "early_stopping.enabled=true", "validate_on=[]"],
            match="needs validation",
        ),
        Case(
            "monitor of a set not validated",
            c,
            [*BASE, "validate_on=[train_recombined]", "checkpoint.monitor=heldout_seen/top1"],
            match="checkpoint.monitor",
        ),
        Case(
            "monitor, validation never runs",
            c,
            [*BASE, "checkpoint.monitor=heldout_seen/top1", "trainer.check_val_every_n_epoch=5"],
            match="needs validation",
        ),
        Case(
            "final_eval=features, full fine-tuning",
            c,
            [*BASE, "final_eval=features", "finetune.mode=full"],
            match="final_eval=features",
        ),
        Case(
            "keep_unseen with full fine-tuning",
            c,
            [*BASE, "finetune.mode=full"],
            match="loss.keep_unseen needs finetune.mode=head",
        ),
        Case("16-mixed on CPU", c, [*BASE, "trainer.precision=16-mixed"], match="needs a GPU"),
        Case(
            "ckpt_path and init_from", c, [*BASE, "ckpt_path=/x", "init_from=/y"], match="both set"
        ),
        Case("optim.lr beyond float32", c, [*BASE, "optim.lr=1e300"], match="beyond float32"),
        Case(
            "augment.scale reversed", c, [*BASE, "augment.scale=[0.9,0.1]"], match="augment.scale"
        ),
        Case("augment.ratio one value", c, [*BASE, "augment.ratio=[1.0]"], match="augment.ratio"),
        Case(
            "optimized_metric of a stage that is not",
            c,
            [*BASE, "optimized_metric=heldout_seen/trained.top1"],
            match="optimized_metric",
        ),
        Case("validate_on a string", c, [*BASE, "validate_on=heldout_seen"], match="validate_on"),
        Case(
            "data.seed=-1 (ImageNet-C)",
            c,
            [*BASE, "data=imagenet_c", "data.seed=-1"],
            match="data.seed=-1",
        ),
        Case("preprocess.std zero", c, [*BASE, "preprocess.std=[0,0,0]"], match="preprocess.std"),
        Case(
            "data.root missing",
            c,
            [*BASE, "data=folder", "data.root={d}/nope"],
            match="does not exist",
        ),
        Case("ckpt_path=last without a run", c, [*BASE, "ckpt_path=last"], match="does not exist"),
        Case(
            "ckpt_path a missing file",
            c,
            [*BASE, "ckpt_path={d}/nope.ckpt"],
            match="does not exist",
        ),
        Case(
            "init_from a missing file",
            c,
            [*BASE, "init_from={d}/nope.ckpt"],
            match="does not exist",
        ),
        Case(
            "feature_cache is a file",
            c,
            [*BASE, "feature_cache={d}/f"],
            setup=lambda d: write(d / "f", "x"),
            match="is a file, not a folder",
        ),
        Case(
            "logger wandb where <run>/wandb is a file",
            c,
            [*BASE, "logger=[csv,wandb]", "logger.wandb.offline=true", "hydra.run.dir={d}/r"],
            setup=lambda d: write(d / "r" / "wandb", "x"),
            match="is a file",
        ),
        Case(
            "heldout_classes leaves no class",
            c,
            [*BASE, "split.heldout_classes=100"],
            match="leaves no class",
        ),
    ]


def _runtime_cases() -> list[Case]:
    """Cases that need the data, the model or a run (checked before the first forward
    pass, or once the results exist, before they are written). Over 80 lines because it
    is one table, a case per input; cut in two, one kind of input would be listed in two
    places."""
    r = "runtime"
    return [
        Case(
            "batch larger than the training set with drop_last",
            r,
            [*BASE, "train_batch_size=100", "drop_last=true"],
            match="train_batch_size=100 is larger than the 16 training",
        ),
        Case(
            "monitor of a metric the set does not write",
            r,
            [*BASE, "checkpoint.monitor=train_recombined/main_top1"],
            match="has no metric 'main_top1'",
        ),
        Case(
            "optimized_metric of a metric the set does not write",
            r,
            [*BASE, "optimized_metric=heldout_classes/finetuned.main_top1"],
            match="is not among",
        ),
        Case(
            "optim.opt unknown to timm",
            r,
            [*BASE, "optim.opt=foo"],
            match="not an optimizer of timm",
        ),
        Case(
            "weights NaN after the last step (sgd lr=3e38, 2 steps)",
            r,
            [*BASE, "optim=sgd", "optim.lr=3e38"],
            match="not finite after step 2",
        ),
        Case(
            "adam step overflows float32 (lr=1e38)",
            r,
            [*BASE, "optim.lr=1e38"],
            match="overflows float32",
        ),
        Case(
            "ckpt_path of another run (split.seed)",
            r,
            [*BASE, "split.seed=1", "ckpt_path={train_run}/checkpoints/last.ckpt"],
            match="split.seed: 0 there, 1 here",
        ),
        Case(
            "ckpt_path of another run (loss, lr)",
            r,
            [*BASE, "loss=bce", "optim.lr=0.01", "ckpt_path={train_run}/checkpoints/last.ckpt"],
            match="checkpoint of another run",
        ),
        Case(
            "ckpt_path of another run (held-out classes)",
            r,
            [*BASE, "split.heldout_classes=10", "ckpt_path={train_run}/checkpoints/last.ckpt"],
            match="split.heldout_classes: 20 there, 10 here",
        ),
        Case(
            "ckpt_path cut short",
            r,
            [*BASE, "ckpt_path={d}/cut.ckpt"],
            setup=lambda d: write(d / "cut.ckpt", _bytes("last.ckpt")[:4000]),
            match="is damaged",
        ),
        Case(
            "ckpt_path random bytes",
            r,
            [*BASE, "ckpt_path={d}/random.ckpt"],
            setup=lambda d: write(d / "random.ckpt", bytes(range(256)) * 64),
            match="is damaged",
        ),
        Case(
            "ckpt_path=last cut short, last.prev.ckpt kept",
            r,
            [*BASE, "ckpt_path=last", "hydra.run.dir={d}/run"],
            setup=_cut_last,
            match="last.prev.ckpt",
        ),
        Case(
            "ckpt_path a plain state dict (not a run's)",
            r,
            [*BASE, "ckpt_path={d}/w.pth"],
            setup=_plain_weights,
            match="records no run settings",
        ),
        Case(
            "init_from another model",
            r,
            [*BASE, "init_from={d}/other.pth"],
            setup=_other_model,
            match="another model",
        ),
        Case(
            "init_from NaN weights",
            r,
            [*BASE, "init_from={d}/nan.pth"],
            setup=_nan_weights,
            match="not finite",
        ),
        Case(
            "evaluate.py model.checkpoint= NaN weights",
            r,
            [TINY, "logger=none", "model.checkpoint={d}/nan.pth"],
            setup=_nan_weights,
            tool="evaluate",
            match="not finite",
        ),
        Case(
            "optim.lr=0 (a warning)",
            r,
            [*BASE, "optim.lr=0"],
            expect="ok",
            check=logged("optim.lr=0: the weights will not change"),
            note="one warning line",
        ),
        Case(
            "feature cache entry cut short (rebuilt)",
            r,
            [*BASE, "feature_cache={d}/fc"],
            setup=_cut_cache,
            expect="ok",
            check=logged("is damaged"),
            note="rebuilt, with a line",
            cli=True,  # in one process the features of the same run are reused from memory
        ),
        Case(
            "init_from a checkpoint of another run",
            r,
            [*BASE, "split.seed=1", "init_from={train_run}/checkpoints/last.ckpt"],
            expect="ok",
            note="a new run from its weights",
        ),
        Case(
            "resume the finished run",
            r,
            [*BASE, "ckpt_path=last", "hydra.run.dir={d}/run"],
            setup=_finished,
            expect="ok",
            check=_unchanged,
            note="metrics unchanged",
        ),
    ]


def _cli_cases() -> list[Case]:
    c = "cli"
    return [
        Case("optim.lr=-1", c, [*BASE, "optim.lr=-1"], cli=True, match="optim.lr=-1"),
        Case(
            "optim.lr=-1 in a -m sweep",
            c,
            ["-m", *BASE, "optim.lr=-1,1e-3", "hydra.sweep.dir={d}/sweep"],
            cli=True,
            expect="error",
            match="optim.lr=-1",
        ),
        Case(
            "finetune.last_n=abc",
            c,
            [*BASE, "finetune.last_n=abc"],
            cli=True,
            match="finetune.last_n",
        ),
        Case(
            "split.heldout_fraction=abc",
            c,
            [*BASE, "split.heldout_fraction=abc"],
            cli=True,
            match="split.heldout_fraction",
        ),
        Case(
            "data=imagenet_c data.seed=-1",
            c,
            [*BASE, "data=imagenet_c", "data.seed=-1"],
            cli=True,
            match="data.seed",
        ),
        Case(
            "logger=[csv,wandb], <run>/wandb a file",
            c,
            [*BASE, "logger=[csv,wandb]", "hydra.run.dir={d}/r"],
            cli=True,
            setup=lambda d: write(d / "r" / "wandb", "x"),
            match="is a file",
        ),
        Case(
            "optim.opt=foo",
            c,
            [*BASE, "optim.opt=foo"],
            cli=True,
            match="optim.opt",
            env=IMPORTS,
            check=_before_torch,
        ),
        Case(
            "ckpt_path=last cut short, last.prev.ckpt kept",
            c,
            [*BASE, "ckpt_path=last", "hydra.run.dir={d}/run"],
            cli=True,
            setup=_cut_last,
            match="last.prev.ckpt",
            env=IMPORTS,
            check=_before_torch,
        ),
        Case(
            "batch larger than the training set with drop_last",
            c,
            [*BASE, "train_batch_size=100", "drop_last=true"],
            cli=True,
            match="train_batch_size=100 is larger than the 16 training",
            env=IMPORTS,
            check=_before_torch,
        ),
        Case(
            "composites.train_images=0",
            c,
            [*BASE, "composites.train_images=0"],
            cli=True,
            match="composites.train_images",
        ),
    ]


# ----------------------------------------------------- issue 33: folders, reports, propose

RUNNING: dict[Path, subprocess.Popen] = {}


def _hold_first(args: list[str], lock_of: str = "run"):
    """A set-up: a first command started into the case's folder, running until the case
    (the second command) has run; ready once it holds ``{d}/<lock_of>``."""

    def setup(d: Path) -> None:
        argv = [a.format(d=d) for a in args]
        env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
        log = (d / "first.out").open("w")
        RUNNING[d] = subprocess.Popen(
            [sys.executable, *argv], cwd=REPO, env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 240
        # started: it holds the folder (or, without runs/lock.py, has begun its log there)
        while time.monotonic() < deadline and not list(d.glob(f"{lock_of}/.run.lock")) + list(
            d.glob(f"{lock_of}/*.log")
        ):
            if RUNNING[d].poll() is not None:
                raise RuntimeError(f"the first run ended: {(d / 'first.out').read_text()[-500:]}")
            time.sleep(0.1)

    return setup


def _first_kept(seed: int):
    """Check: the first run finished with its own results (its seed), untouched."""

    def check(res: Result, d: Path) -> str | None:
        first = RUNNING.pop(d)
        if first.wait(timeout=600) != 0:
            return f"the first run failed: {(d / 'first.out').read_text()[-300:]}"
        info = json.loads((d / "run" / "run.json").read_text())
        return None if info.get("seed") == seed else f"run.json has seed {info.get('seed')}"

    return check


def _sweep_waits(res: Result, d: Path) -> str | None:
    first = RUNNING.pop(d)
    first.wait(timeout=600)
    said = res.stdout + res.stderr
    if "evaluating" in said or "incomplete results" in said:
        return "the second sweep evaluated the first's running job again"
    return None if "complete results, skipped" in said else "the job was not skipped"


def _said_once(text: str):
    def check(res: Result, d: Path) -> str | None:
        n = (res.stdout + res.stderr).count(text)
        return None if n == 1 else f"{text!r} printed {n} times"

    return check


def _not_said(*texts: str):
    def check(res: Result, d: Path) -> str | None:
        said = res.stdout + res.stderr + res.logs
        found = [t for t in texts if t in said]
        return f"said {found[0]!r}" if found else None

    return check


def _in_file(rel: str, *texts: str, absent: tuple[str, ...] = ()):
    def check(res: Result, d: Path) -> str | None:
        path = d / rel
        if not path.is_file():
            return f"no {rel}"
        text = path.read_text()
        missing = [t for t in texts if t not in text]
        there = [t for t in absent if t in text]
        if missing:
            return f"{rel} lacks {missing[0]!r}"
        return f"{rel} says {there[0]!r}" if there else None

    return check


def _dead_lock(d: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = {"pid": dead.pid, "host": socket.gethostname(), "started": "2026-01-01 00:00:00"}
    write(d / "out" / ".run.lock", json.dumps({**lock, "process_started": "1"}))


def _other_host_lock(d: Path) -> None:
    lock = {"pid": 1, "host": "node-elsewhere", "started": "2026-01-01 00:00:00"}
    write(d / "out" / ".run.lock", json.dumps(lock))


def _two_train_runs(d: Path) -> None:
    """Copies of the finished train run as a sweep over optim.lr leaves them."""
    import shutil

    for lr in (0.001, 0.01):
        job = d / "sweep" / f"optim.lr={lr}"
        shutil.copytree(SHARED["train_run"], job)
        info = json.loads((job / "run.json").read_text())
        info["optimizer"]["lr"] = lr
        (job / "run.json").write_text(json.dumps(info))


def _repeated_evaluation(d: Path) -> None:
    import shutil

    shutil.copytree(SHARED["eval_run"], d / "a" / "run")
    shutil.copytree(SHARED["eval_run"], d / "b" / "run")


def _one_photo_per_class(d: Path) -> None:
    """A user's own folder: 6 photos of 6 classes, evaluated (the embedded model)."""
    from bad_inputs import flat

    flat(d / "photos", n=6)
    case = Case("own", "-", ["data=folder", f"data.root={d / 'photos'}", "logger=none"], "ok")
    res = run_inproc(case, case.args, d / "eval")
    if res.code:
        raise RuntimeError(res.stderr[-500:])


def _exports(d: Path) -> None:
    """Proposals of the finished evaluation, and one reviewer's export of them."""
    from imagenet_multilabel.propose.workflow import propose

    out = propose([str(SHARED["eval_run"])], out=str(d / "p"), dataset="demo")
    first = json.loads((out / "proposals.json").read_text())["images"][0]
    write(d / "a.json", json.dumps({first["file"]: [first["original"]]}))


I33 = "i33 "  # the cases of issue 33: --only "i33"


def _issue33_cases() -> list[Case]:
    """The cases of issue 33. Over 80 lines because it is one table, a case per input of that
    issue; cut in two, the issue's cases would be listed in two places."""
    run = [*BASE, "hydra.run.dir={d}/run"]
    return [
        Case(
            I33 + "two train.py runs into one hydra.run.dir (seeds 0, 1)",
            "concurrency",
            [*run, "seed=1"],
            cli=True,
            setup=_hold_first(["train.py", *run, "seed=0"]),
            match="is held by another run still writing there: pid",
            check=_first_kept(0),
            note="the first's results its own",
        ),
        Case(
            I33 + "two identical sweeps started together",
            "concurrency",
            ["-m", TINY, "logger=none", "batch_size=8,16", "hydra.sweep.dir={d}/sweep"],
            tool="evaluate",
            cli=True,
            expect="ok",
            setup=_hold_first(
                [
                    "evaluate.py",
                    "-m",
                    TINY,
                    "logger=none",
                    "batch_size=8,16",
                    "hydra.sweep.dir={d}/sweep",
                ],
                lock_of="sweep/*",
            ),
            check=_sweep_waits,
            note="waits for the running jobs, skips them",
        ),
        Case(
            I33 + "a run into a folder a killed run held",
            "concurrency",
            BASE,
            expect="ok",
            setup=_dead_lock,
            check=logged("taking over the lock of a run that is gone"),
            note="taken over with a line",
        ),
        Case(
            I33 + "a run into a folder held on another host",
            "concurrency",
            BASE,
            setup=_other_host_lock,
            match="on another host",
        ),
        Case(
            I33 + "gallery run_dir=<a train run>",
            "reports",
            ["run_dir={train_run}", "gallery.output_dir={d}/g"],
            tool="gallery",
            cli=True,
            expect="ok",
            check=_not_said("not found"),
        ),
        Case(
            I33 + "propose runs=<a train run> dataset=train_recombined",
            "propose",
            ["runs={train_run}", "dataset=train_recombined", "out={d}/p"],
            tool="propose",
            cli=True,
            expect="ok",
            check=_not_said("not found"),
        ),
        Case(
            I33 + "report of a train sweep over optim.lr",
            "reports",
            ["{d}/sweep", "--out", "{d}/rep"],
            tool="report",
            cli=True,
            expect="ok",
            setup=_two_train_runs,
            check=_in_file("rep/leaderboard.md", "optimizer.lr=0.001", "optimizer.lr=0.01"),
            note="rows named by the learning rate",
        ),
        Case(
            I33 + "report over two identical runs of one dataset",
            "reports",
            ["{d}/a", "{d}/b", "--out", "{d}/rep"],
            tool="report",
            cli=True,
            expect="ok",
            setup=_repeated_evaluation,
            check=_in_file(
                "rep/leaderboard.md", "left out", absent=("nothing but their run folders",)
            ),
            note="the newest kept, the other named",
        ),
        Case(
            I33 + "propose merge nope.json",
            "propose",
            ["merge", "{d}/nope.json", "{d}/a.json", "proposals={d}/p"],
            tool="propose",
            cli=True,
            setup=_exports,
            match="reviewer's export",
        ),
        Case(
            I33 + "propose on a folder of one photo per class",
            "propose",
            ["runs={d}/eval/out", "out={d}/p"],
            tool="propose",
            cli=True,
            expect="ok",
            setup=_one_photo_per_class,
            check=_in_file("p/review.html", 'id="exemplar-hint"', absent=('class="noex"',)),
            note="names large, how to add exemplars",
        ),
        Case(
            I33 + "hydra.sweep.dir=<a file>",
            "cli",
            ["-m", *BASE, "hydra.sweep.dir={d}/f"],
            cli=True,
            setup=lambda d: write(d / "f", "x"),
            match="hydra.sweep.dir",
        ),
        Case(
            I33 + "Optuna search, bad optimized_metric",
            "cli",
            [
                "hparams_search=optuna_head",
                *BASE,
                "optimized_metric=heldout_classes/finetuned.x",
                "hydra.sweeper.n_trials=2",
                "hydra.sweep.dir={d}/search",
            ],
            cli=True,
            match="optimized_metric",
        ),
        Case(
            I33 + "an error printed once",
            "cli",
            [*BASE, "data=folder", "data.root={d}/nope"],
            cli=True,
            match="does not exist",
            check=_said_once("does not exist"),
        ),
        Case(
            I33 + "Lightning's lines once, no hints",
            "cli",
            BASE,
            cli=True,
            expect="ok",
            check=all_of(_said_once("GPU available"), _not_said("Tip:", "srun")),
        ),
        Case(
            I33 + "evaluate.py data=imagenet on a flat <wnid>_<name>.JPEG folder",
            "cli",
            [TINY, "logger=none", "data=imagenet", "data.root={d}/val"],
            setup=lambda d: _flat(d / "val"),
            match="use data=folder",
        ),
        Case(
            I33 + "evaluate.py data=folder on it (the suggestion)",
            "cli",
            [TINY, "logger=none", "data=folder", "data.root={d}/val"],
            setup=lambda d: _flat(d / "val"),
            expect="ok",
        ),
        # resume: a folder as ckpt_path, a longer resume, an interrupted run's line
        Case(
            I33 + "resume: ckpt_path=<a folder>",
            "resume",
            [*BASE, "ckpt_path={d}"],
            match="a folder",
        ),
        Case(
            I33 + "resume: a finished run with trainer.max_epochs=2",
            "resume",
            [*BASE, "ckpt_path=last", "trainer.max_epochs=2", "hydra.run.dir={d}/run"],
            setup=_finished,
            match="max_epochs",
        ),
        Case(
            I33 + "resume: SIGINT names ckpt_path=last",
            "resume",
            [*BASE, "trainer.max_epochs=20", "composites.train_images=64"],
            cli=True,
            expect="sigint",
            match="ckpt_path=last",
            action=signal_when(
                signal.SIGINT, lambda p, out: (out / "checkpoints").is_dir(), group=True
            ),
        ),
    ]


def _flat(root: Path) -> None:
    from bad_inputs import flat

    flat(root, n=3)


def train_cases() -> list[Case]:
    cases = [
        *_config_cases(),
        *_combination_cases(),
        *_runtime_cases(),
        *_cli_cases(),
        *_issue33_cases(),
    ]
    for case in cases:  # Case's default tool is evaluate
        if case.tool == "evaluate" and not case.name.removeprefix(I33).startswith(
            ("evaluate.py", "two identical sweeps")
        ):
            case.tool = "train"
    return cases


# ------------------------------------------------------------------------------ set-ups

SHARED: dict[str, Path] = {}


def _bytes(name: str) -> bytes:
    return (SHARED["train_run"] / "checkpoints" / name).read_bytes()


# the imports of a command-line case, on stderr: _before_torch reads them
IMPORTS = {"PYTHONPROFILEIMPORTTIME": "1"}


def _before_torch(res: Result, d: Path) -> str | None:
    """The line came before torch was imported (a case run with ``env=IMPORTS``)."""
    imported = {ln.split("|")[-1].strip() for ln in res.stderr.splitlines() if "|" in ln}
    if not imported:
        return "no import profile on stderr"
    return "torch imported before the line" if "torch" in imported else None


def _cut_last(d: Path) -> None:
    write(d / "run" / "checkpoints" / "last.ckpt", _bytes("last.ckpt")[:4000])
    write(d / "run" / "checkpoints" / "last.prev.ckpt", _bytes("last.ckpt"))


def _finished(d: Path) -> None:
    import shutil

    shutil.copytree(SHARED["train_run"], d / "run")


def _unchanged(res: Result, d: Path) -> str | None:
    import json

    a = json.loads((SHARED["train_run"] / "metrics.json").read_text())
    b = json.loads((d / "run" / "metrics.json").read_text())
    return None if json.dumps(a) == json.dumps(b) else "metrics changed"


def _model_state(name: str = "test_efficientnet", **kwargs):
    import timm

    return timm.create_model(name, **kwargs).state_dict()


def _plain_weights(d: Path) -> None:
    import torch

    torch.save(_model_state(), d / "w.pth")


def _other_model(d: Path) -> None:
    import torch

    torch.save(_model_state(num_classes=10), d / "other.pth")


def _nan_weights(d: Path) -> None:
    import torch

    state = _model_state()
    state["classifier.weight"][0, 0] = float("nan")
    torch.save(state, d / "nan.pth")


def _cut_cache(d: Path) -> None:
    """A feature cache entry of exactly this run, cut short."""
    import shutil

    shutil.copytree(SHARED["train_cache"], d / "fc")
    for entry in (d / "fc").glob("*.pt"):
        entry.write_bytes(entry.read_bytes()[:1000])


def train_shared(tmp: Path) -> dict[str, Path]:
    """One finished train.py run (with a feature cache) for the resume cases."""
    d = tmp / "shared" / "train"
    case = Case(
        "train_run", "-", [*BASE, f"feature_cache={tmp / 'shared' / 'fc'}"], "ok", tool="train"
    )
    res = run_inproc(case, case.args, d)
    if res.code != 0:
        raise SystemExit(f"could not make the finished run: {res.stderr[-2000:]}")
    SHARED.update(train_run=d / "out", train_cache=tmp / "shared" / "fc")
    e = tmp / "shared" / "eval"
    case = Case("eval_run", "-", [TINY, "logger=none"], "ok")
    if run_inproc(case, case.args, e).code != 0:
        raise SystemExit("could not make the finished evaluation")
    SHARED["eval_run"] = e / "out"
    return dict(SHARED)


if __name__ == "__main__":
    trial(train_cases, train_shared, __doc__)

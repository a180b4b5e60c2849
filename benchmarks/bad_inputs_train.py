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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bad_inputs import (
    ABBREVIATIONS,
    TINY,
    Case,
    Result,
    logged,
    run_inproc,
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
    pass, or once the results exist, before they are written)."""
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
        Case("optim.opt=foo", c, [*BASE, "optim.opt=foo"], cli=True, match="optim.opt"),
        Case(
            "composites.train_images=0",
            c,
            [*BASE, "composites.train_images=0"],
            cli=True,
            match="composites.train_images",
        ),
    ]


def train_cases() -> list[Case]:
    cases = [*_config_cases(), *_combination_cases(), *_runtime_cases(), *_cli_cases()]
    for case in cases:  # Case's default tool is evaluate
        if not case.name.startswith("evaluate.py"):
            case.tool = "train"
    return cases


# ------------------------------------------------------------------------------ set-ups

SHARED: dict[str, Path] = {}


def _bytes(name: str) -> bytes:
    return (SHARED["train_run"] / "checkpoints" / name).read_bytes()


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
    return dict(SHARED)


if __name__ == "__main__":
    trial(train_cases, train_shared, __doc__)

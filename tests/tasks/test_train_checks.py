"""train.py's settings checked before anything runs, results checked before they are
written, and resume refusing what is not this run (issue: fine-tuning you can trust)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from imagenet_multilabel.checks import check_run_settings, check_train_settings
from imagenet_multilabel.core.checkpoints import unloadable
from imagenet_multilabel.core.config import CONFIG_DIR
from imagenet_multilabel.core.errors import ModelError, UserError
from imagenet_multilabel.runs.rundir import RunDir
from imagenet_multilabel.tasks.evaluate import evaluate
from imagenet_multilabel.tasks.train import train
from tests.helpers import TINY_TRAIN, error_line, train_py
from tests.tasks.train_helpers import FAST, checkpoint_state, fit

# (overrides, a part of the line); each refused by check_train_settings, before torch
BAD = [
    (("optim.lr=-1",), "optim.lr=-1 is negative"),
    (("optim.lr=inf",), "optim.lr=inf is not valid: give a finite number"),
    (("optim.lr=1e300",), "beyond float32"),
    (("optim.weight_decay=-0.1",), "optim.weight_decay=-0.1 is negative"),
    (("optim.layer_decay=0",), "optim.layer_decay=0 is out of range"),
    (("optim.opt=7",), "optim.opt=7 is not valid"),
    (("finetune.last_n=2.5",), "finetune.last_n=2.5 is not valid: give a whole number"),
    (("finetune.last_n=abc",), "finetune.last_n='abc' is not valid"),
    (("finetune.last_n=0",), "finetune.last_n=0 is not valid"),
    (("finetune.mode=foo",), "finetune.mode='foo' is unknown: use one of head, last_n, full"),
    (("split.heldout_classes=-1",), "split.heldout_classes=-1 is negative"),
    (("split.heldout_fraction=abc",), "split.heldout_fraction='abc' is not valid"),
    (("split.heldout_fraction=1",), "split.heldout_fraction=1 is out of range"),
    (("split.seed=-3",), "split.seed=-3 is negative"),
    (("composites.train_images=0",), "composites.train_images=0 is not valid"),
    (("composites.eval_images=2.5",), "composites.eval_images=2.5 is not valid"),
    (("composites.rows=3", "composites.cols=3"), "composites.rows=3 composites.cols=3 makes 9"),
    (("composites.enabled=maybe",), "composites.enabled='maybe' is not valid: give true"),
    (("train_batch_size=0",), "train_batch_size=0 is not valid"),
    (("drop_last=yes",), "drop_last='yes' is not valid"),
    (("sched.name=step",), "sched.name='step' is unknown: use one of cosine, constant"),
    (("sched.warmup_steps=-1",), "sched.warmup_steps=-1 is negative"),
    (("sched.total_steps=4", "sched.warmup_steps=4"), "not less than sched.total_steps=4"),
    (("trainer.max_epochs=0",), "trainer.max_epochs=0 trains nothing"),
    (("trainer.max_epochs=-1",), "both unlimited"),
    (("trainer.accumulate_grad_batches=0",), "trainer.accumulate_grad_batches=0"),
    (("trainer.gradient_clip_val=-1",), "trainer.gradient_clip_val=-1 is negative"),
    (("validate_on=[bogus]",), "validate_on: 'bogus' is not a set of train.py"),
    (("checkpoint.monitor=bogus",), "checkpoint.monitor='bogus' is not '<set>/<metric>'"),
    (("checkpoint.mode=best",), "checkpoint.mode='best' is unknown"),
    (("checkpoint.every_n_steps=0",), "checkpoint.every_n_steps=0 is not valid"),
    (("early_stopping.enabled=true", "checkpoint.monitor=null"), "early_stopping needs a"),
    (
        ("checkpoint.monitor=heldout_seen/top1", "trainer.check_val_every_n_epoch=20"),
        "needs validation",
    ),
    (("regularize.l2_to_pretrained=-1",), "regularize.l2_to_pretrained=-1 is negative"),
    (("regularize.train_rows=some",), "regularize.train_rows='some' is unknown"),
    (("augment.scale=[0.5,0.1]",), "augment.scale=[0.5, 0.1] is not valid"),
    (("augment.hflip=2",), "augment.hflip=2 is out of range"),
    (("final_eval=both",), "final_eval='both' is unknown"),
    (("optimized_metric=bogus/metric",), "optimized_metric='bogus/metric' is not a metric"),
    (("loss.keep_unseen=2",), "loss.keep_unseen=2 is out of range"),
    (("init_from=/x", "ckpt_path=/y"), "ckpt_path and init_from are both set"),
    (("ckpt_path=last",), "checkpoints/last.ckpt does not exist .pass hydra.run.dir"),
    (("init_from=/nonexistent.ckpt",), "init_from=/nonexistent.ckpt: /nonexistent.ckpt does not"),
    (("model.checkpoint=/tmp",), "model.checkpoint=/tmp: /tmp is a folder, not a checkpoint"),
    # the training set's size is in the config: composites.train_images
    (
        ("train_batch_size=100", "drop_last=true", "composites.train_images=16"),
        "train_batch_size=100 is larger than the 16 training images",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_a_bad_setting_is_refused_before_anything_runs(compose_cfg, overrides, message) -> None:
    cfg = compose_cfg(*overrides, config_name="train")
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")):
        check_train_settings(cfg)


def test_the_default_settings_pass(compose_cfg) -> None:
    check_train_settings(compose_cfg(config_name="train"))


def test_a_file_as_feature_cache_is_refused(compose_cfg, tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    cfg = compose_cfg(f"feature_cache={tmp_path / 'f'}", config_name="train")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_train_settings(cfg)


def test_a_file_where_wandb_writes_its_folder_is_refused(compose_cfg) -> None:
    cfg = compose_cfg("logger=wandb", config_name="train")
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True)
    (out / "wandb").write_text("x")
    with pytest.raises(UserError, match="wandb is a file"):
        check_train_settings(cfg)


def cut_last_checkpoint(run: Path) -> Path:
    """``run``/checkpoints/last.ckpt cut short, a complete last.prev.ckpt beside it; the
    previous one's path."""
    (run / "checkpoints").mkdir(parents=True)
    prev = run / "checkpoints" / "last.prev.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(5000)}, "global_step": 2}, prev)
    (run / "checkpoints" / "last.ckpt").write_bytes(prev.read_bytes()[:5000])
    return prev


def test_a_damaged_checkpoint_is_refused_by_the_config_check(compose_cfg, tmp_path) -> None:
    cfg = compose_cfg("ckpt_path=last", config_name="train")
    prev = cut_last_checkpoint(Path(cfg.paths.output_dir))
    with pytest.raises(ModelError, match=f"last.ckpt is damaged .*ckpt_path={prev}$"):
        check_train_settings(cfg)
    cut = prev.with_name("last.ckpt")
    cfg = compose_cfg(f"init_from={cut}", config_name="train")
    with pytest.raises(ModelError, match="last.ckpt is damaged .*replace it with a complete copy"):
        check_train_settings(cfg)
    for name in ("train", "evaluate"):  # evaluate.py's check is the one train.py starts with
        cfg = compose_cfg(f"model.checkpoint={cut}", config_name=name)
        with pytest.raises(ModelError, match="last.ckpt is damaged .cut short, or not a"):
            (check_train_settings if name == "train" else check_run_settings)(cfg)
    cfg = compose_cfg(f"init_from={prev}", config_name="train")
    check_train_settings(cfg)  # a complete one passes


# each line comes before torch is imported (train.py's check_train_settings); the case's
# setup writes its files into the run folder
CLI_BEFORE_TORCH = [
    (("optim.lr=-1",), None, "error: optim.lr=-1 is negative: give a number >= 0"),
    (
        ("ckpt_path=last",),
        cut_last_checkpoint,
        "last.ckpt is damaged (cut short, or not a checkpoint: the zip directory at its end",
    ),
    (
        (*TINY_TRAIN, "train_batch_size=100", "drop_last=true"),
        None,
        "error: train_batch_size=100 is larger than the 16 training images and drop_last",
    ),
    # timm's names from training/timm_optimizers.py, not from timm (which imports torch)
    (
        ("optim.opt=foo",),
        None,
        "error: optim.opt='foo' is not an optimizer of timm: use e.g. adam, adamw, sgd",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "setup", "line"), CLI_BEFORE_TORCH)
def test_cli_config_error_comes_before_torch_is_imported(
    tmp_path: Path, overrides, setup, line
) -> None:
    run = tmp_path / "r"
    said = setup(run) if setup is not None else None
    proc = train_py(*overrides, f"hydra.run.dir={run}", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 2
    assert line in error_line(proc)
    if said is not None:
        assert error_line(proc).endswith(f"ckpt_path={said}")
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if "|" in ln}
    assert "torch" not in imported and "lightning" not in imported
    assert not (run / "metrics.json").exists()
    assert str(CONFIG_DIR)  # the config folder the line came from


# ------------------------------------------------------------------ checked in train()


def test_a_batch_the_training_set_cannot_fill_is_refused(compose_cfg, photos) -> None:
    cfg = compose_cfg(
        *FAST, f"data.root={photos}", "train_batch_size=100", "drop_last=true", config_name="train"
    )
    with pytest.raises(UserError, match="train_batch_size=100 is larger than the 12 training"):
        train(cfg)
    assert not Path(cfg.paths.output_dir, "checkpoints").exists()


def test_an_unknown_metric_is_refused_before_the_forward_pass(compose_cfg, photos) -> None:
    cfg = compose_cfg(
        *FAST,
        f"data.root={photos}",
        "optimized_metric=heldout_classes/delta.num_images",  # a count has no delta
        config_name="train",
    )
    with pytest.raises(UserError, match="'heldout_classes/delta.num_images' is not among"):
        train(cfg)
    out = Path(cfg.paths.output_dir)
    assert not (out / "checkpoints").exists() and not (out / "metrics.json").exists()


def test_weights_that_become_nan_write_nothing(compose_cfg, photos) -> None:
    # 2 steps: the first loss is finite, the weights after the second are not
    cfg = compose_cfg(
        *FAST,
        f"data.root={photos}",
        "optim=sgd",
        "optim.lr=3e38",
        "train_batch_size=6",
        "trainer.max_epochs=1",
        config_name="train",
    )
    with pytest.raises(UserError, match="weights are not finite after step 2"):
        train(cfg)
    out = Path(cfg.paths.output_dir)
    assert not (out / "metrics.json").exists() and not (out / "predictions").exists()


def test_a_checkpoint_with_nan_weights_is_refused_by_evaluate(compose_cfg, tmp_path) -> None:
    import timm

    state = timm.create_model("test_efficientnet").state_dict()
    state["classifier.weight"][3, 5] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    cfg = compose_cfg("model=test_tiny", f"model.checkpoint={tmp_path / 'nan.pth'}", "logger=none")
    with pytest.raises(ModelError, match=r"nan.pth holds weights that are not finite \(class"):
        evaluate(cfg)
    assert not Path(cfg.paths.output_dir, "metrics.json").exists()


# ------------------------------------------------------------------ feature cache


@pytest.mark.slow
def test_the_feature_cache_follows_the_photos(compose_cfg, photos, tmp_path, caplog) -> None:
    from imagenet_multilabel.data.datasets.folders import DEMO_ROOT
    from imagenet_multilabel.tasks import feature_cache as task

    caplog.set_level(logging.INFO, logger="imagenet_multilabel")
    cache = tmp_path / "fc"
    args = (f"feature_cache={cache}", "trainer.max_epochs=1")

    def fit_alone(*more: str) -> str:
        task._FEATURE_MEMO.clear()  # as a separate process: only the stored cache is shared
        caplog.clear()
        return json.dumps(fit(compose_cfg, photos, *more)[0], sort_keys=True)  # NaN == NaN

    fit_alone(*args)
    first = fit_alone(*args)
    assert "pretrained features: read from" in caplog.text
    # other photos under the same names: computed again, as without a cache
    others = sorted(DEMO_ROOT.glob("*.JPEG"))[1::4]
    for path, other in zip(sorted(photos.glob("*.JPEG")), others, strict=False):
        path.write_bytes(other.read_bytes())
    second = fit_alone(*args)
    assert "read from" not in caplog.text
    uncached = fit_alone("trainer.max_epochs=1")
    assert second == uncached and second != first
    # a damaged entry: a warning line, computed again, the same result
    for entry in cache.glob("*.pt"):
        entry.write_bytes(entry.read_bytes()[:1000])
    again = fit_alone(*args)
    assert "is damaged" in caplog.text and "computing them again" in caplog.text
    assert again == uncached


# ------------------------------------------------------------------ resume


@pytest.mark.slow
def test_a_checkpoint_of_another_run_is_refused(compose_cfg, photos) -> None:
    _, other = fit(compose_cfg, photos, "trainer.max_epochs=1", "split.seed=1", "optim.lr=0.01")
    ckpt = other / "checkpoints" / "last.ckpt"
    cfg = compose_cfg(*FAST, f"data.root={photos}", f"ckpt_path={ckpt}", config_name="train")
    with pytest.raises(UserError, match="checkpoint of another run") as info:
        train(cfg)
    assert "optim.lr: 0.01 there, 0.001 here" in str(info.value)
    assert "split.seed: 1 there, 0 here" in str(info.value)
    assert f"init_from={ckpt}" in str(info.value)
    # init_from: a new run from its weights, recorded
    metrics, out = fit(compose_cfg, photos, "trainer.max_epochs=1", f"init_from={ckpt}")
    run = json.loads((out / "run.json").read_text())
    assert run["checkpoints"]["init_from"] == str(ckpt)
    # its "pretrained" stage is the checkpoint's weights: the other run's fine-tuned logits
    started = RunDir(out).predictions("single_photos@pretrained")["logits"]
    np.testing.assert_allclose(
        started, RunDir(other).predictions("single_photos")["logits"], rtol=1e-5, atol=1e-5
    )
    assert metrics["single_photos/finetuned.num_images"] == 24


def test_a_damaged_last_checkpoint_names_the_previous_one(compose_cfg, photos) -> None:
    _, out = fit(compose_cfg, photos, "trainer.max_epochs=2")
    last, prev = out / "checkpoints" / "last.ckpt", out / "checkpoints" / "last.prev.ckpt"
    # last.ckpt is saved again when the fit ends: the one before is the last epoch's end
    assert checkpoint_state(prev)["global_step"] == 6 == checkpoint_state(last)["global_step"]
    assert checkpoint_state(prev)["loops"] != checkpoint_state(last)["loops"]
    for path in (last, prev):  # Lightning's checkpoints pass the check made without torch
        assert unloadable(path) is None
    last.write_bytes(last.read_bytes()[:5000])  # cut short
    cfg = compose_cfg(
        *FAST, f"data.root={photos}", "trainer.max_epochs=2", "ckpt_path=last", config_name="train"
    )
    cfg.paths.output_dir = str(out)
    with pytest.raises(ModelError, match=f"last.ckpt is damaged .*ckpt_path={prev}"):
        train(cfg)


# epoch-based runs stopped at the end of an epoch: Lightning does not restore the loader
# there (the bug behind monitor=null resuming differently); three fits: slow
@pytest.mark.slow
@pytest.mark.parametrize("monitor", ["null", "auto"])
def test_resume_at_an_epoch_end_is_the_uninterrupted_run(compose_cfg, photos, monitor) -> None:
    common = ("sched=constant", f"checkpoint.monitor={monitor}")
    whole_metrics, whole = fit(compose_cfg, photos, *common, "trainer.max_epochs=3")
    _, stopped = fit(compose_cfg, photos, *common, "trainer.max_epochs=1")
    cfg = compose_cfg(
        *FAST,
        f"data.root={photos}",
        *common,
        "trainer.max_epochs=3",
        "ckpt_path=last",
        config_name="train",
    )
    cfg.paths.output_dir = str(stopped)
    same = json.dumps(whole_metrics, sort_keys=True)  # NaN == NaN
    assert json.dumps(train(cfg), sort_keys=True) == same
    a = checkpoint_state(whole / "checkpoints" / "last.ckpt")
    b = checkpoint_state(stopped / "checkpoints" / "last.ckpt")
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    # resuming the finished run changes nothing
    assert json.dumps(train(cfg), sort_keys=True) == same
    c = checkpoint_state(stopped / "checkpoints" / "last.ckpt")
    assert c["global_step"] == a["global_step"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, c["state_dict"][key]), key

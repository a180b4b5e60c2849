"""train end to end: a real tiny timm model, real demo JPEGs, a real Trainer."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from imagenet_multilabel.checks import check_train_settings
from imagenet_multilabel.core.errors import DataError, ModelError, UserError
from imagenet_multilabel.data.datasets.folders import DEMO_ROOT
from imagenet_multilabel.data.fingerprint import ids_sha256
from imagenet_multilabel.runs.rundir import RunDir
from imagenet_multilabel.tasks.evaluate import evaluate
from imagenet_multilabel.tasks.train import train
from tests.helpers import ONE_THREAD, error_line, train_py
from tests.tasks.train_helpers import FAST, checkpoint_state, fit


def test_short_fit_writes_a_complete_run(compose_cfg, photos: Path) -> None:
    metrics, out = fit(compose_cfg, photos, "trainer.max_epochs=1")
    run = RunDir(out)
    assert run.datasets == ["train_recombined", "heldout_classes", "single_photos"]
    for name in run.datasets:
        m = run.metrics[name]
        for metric in ("top1", "top5", "vartopk_strict", "asma"):
            assert m[f"delta.{metric}"] == pytest.approx(
                m[f"finetuned.{metric}"] - m[f"pretrained.{metric}"]
            )
        assert f"{name}@pretrained" in run.prediction_files and name in run.prediction_files
        # which images the result counted, as evaluate.py records it (no metric)
        counted = run.predictions(name)["path"]
        assert run.image_sets[name] == {
            "num_distinct_images": len(set(counted)),
            "images_sha256": ids_sha256(counted),
        }
        assert metrics[f"{name}/images_sha256"] == ids_sha256(counted)
    assert run.metrics["single_photos"]["finetuned.num_images"] == 24
    assert metrics["heldout_classes/pretrained.num_images"] == 6

    split = json.loads((out / "split.json").read_text())
    assert len(split["heldout_classes"]) == 6 and split["counts"]["train"] == 18
    files = split["files"]
    assert not set(files["train"]) & set(files["heldout_classes"])
    # composites for training are made of training photos only
    tiles = {t for comp in run.predictions("train_recombined")["path"] for t in comp.split("+")}
    assert tiles <= set(files["train"])
    unseen = {t for comp in run.predictions("heldout_classes")["path"] for t in comp.split("+")}
    assert unseen <= set(files["heldout_classes"])

    info = run.info
    assert info["task"] == "train" and info["loss"]["name"] == "soft_ce"
    assert info["loss"]["keep_unseen"] == 0.9  # the default experiment's loss=soft_ce_lwf
    assert info["optimizer"]["opt"] == "adam" and info["schedule"]["name"] == "cosine"
    assert info["steps"]["global_step"] == 3  # 12 composites, batch 4, one epoch
    assert info["finetune"] == {
        "mode": "head",
        "groups": ["classifier"],
        "trained_parameters": 257_000,
        "cached_features": True,
    }
    assert info["augmentation"]["applied"] is False
    assert info["channels_last"] is True  # the memory format the model ran in
    assert info["split"]["counts"]["heldout_classes"] == 6
    assert (out / "checkpoints" / "best.ckpt").is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file()


def test_evaluate_reproduces_the_final_logits_bitwise(compose_cfg, photos: Path) -> None:
    _, out = fit(compose_cfg, photos, "trainer.max_epochs=1", "optim.lr=0.1")
    best = out / "checkpoints" / "best.ckpt"
    cfg = compose_cfg(
        "model=test_tiny",
        "data=demo",
        f"data.root={photos}",
        "batch_size=8",
        f"model.checkpoint={best}",
        "logger=none",
    )
    evaluate(cfg)
    again = RunDir(cfg.paths.output_dir).predictions("demo")
    run = RunDir(out)
    final = run.predictions("single_photos")
    assert list(again["path"]) == list(final["path"])
    assert np.array_equal(again["logits"], final["logits"])  # bitwise
    # and training changed the model
    assert not np.array_equal(
        final["logits"], run.predictions("single_photos@pretrained")["logits"]
    )


@pytest.mark.slow
def test_cached_features_train_the_head_as_images_do(compose_cfg, photos: Path) -> None:
    common = (
        "trainer.max_epochs=2",
        "optim.lr=0.05",
        "augment.enabled=false",
        "loss=bce",  # every row gets a sizeable gradient: Adam's steps follow them closely
        "final_eval=features",
    )
    _, cached = fit(compose_cfg, photos, *common)
    _, images = fit(
        compose_cfg, photos, *common[:4], "finetune.cache_features=false", "final_eval=images"
    )
    a = checkpoint_state(cached / "checkpoints" / "last.ckpt")["state_dict"]
    b = checkpoint_state(images / "checkpoints" / "last.ckpt")["state_dict"]
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4)  # Adam: float noise


def test_keep_unseen_trains_on_cached_features_as_on_images(compose_cfg, photos: Path) -> None:
    """The pretrained probabilities of unseen classes as soft targets: the pretrained
    logits come from the frozen classifier on cached features or on the images' pooled
    features alike."""
    common = (
        "loss=soft_ce",
        "loss.keep_unseen=1.0",
        "regularize.train_rows=all",
        "trainer.max_epochs=1",
        # SGD: Adam scales the tiny gradients of unseen rows (their target is their own
        # probability) up to lr-sized steps, and with them the features' float noise
        "optim=sgd",
        "optim.lr=0.5",
        "augment.enabled=false",
    )
    _, cached = fit(compose_cfg, photos, *common, "final_eval=features")
    _, images = fit(compose_cfg, photos, *common, "finetune.cache_features=false")
    assert RunDir(cached).info["loss"]["keep_unseen"] == 1.0
    a = checkpoint_state(cached / "checkpoints" / "last.ckpt")["state_dict"]
    b = checkpoint_state(images / "checkpoints" / "last.ckpt")["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    # and the kept probabilities changed the training: far more than cached vs images
    _, plain = fit(compose_cfg, photos, *common, "loss.keep_unseen=0.0", "final_eval=features")
    c = checkpoint_state(plain / "checkpoints" / "last.ckpt")["state_dict"]
    w = next(k for k in a if k.endswith("classifier.weight"))
    assert (a[w] - c[w]).abs().max() > 100 * (a[w] - b[w]).abs().max()
    pretrained = RunDir(cached).predictions("heldout_classes@pretrained")["logits"]
    assert not np.array_equal(RunDir(cached).predictions("heldout_classes")["logits"], pretrained)


# mid-epoch, end of epoch (3 batches per epoch); three fits: slow (the loader's own resume
# is tested fast in tests/training/test_data.py). At 3 the stopped run's last.ckpt is the
# one saved at the epoch's end, which Lightning restarts by running that end again: the
# epoch counted once (training/resume.py: count_epoch_end_once), else the next epoch drew
# the order and augmentation of the one after it
@pytest.mark.slow
@pytest.mark.parametrize("at", [2, 3])
def test_resume_is_bitwise_the_uninterrupted_run(compose_cfg, photos: Path, at: int) -> None:
    common = (
        "finetune.mode=last_n",  # images through the backbone, augmented, batch norm trained
        "loss=soft_ce",  # keep_unseen (the default's) is head-only
        "augment.enabled=true",
        f"checkpoint.every_n_steps={at}",
        f"sched.total_steps={2 * at}",  # the schedule of the whole run, also when stopped
        "trainer.max_epochs=-1",
        "validate_on=[train_recombined]",
        "final_eval=images",
    )
    _, whole = fit(compose_cfg, photos, *common, f"trainer.max_steps={2 * at}")
    cfg = compose_cfg(
        *FAST, f"data.root={photos}", *common, f"trainer.max_steps={at}", config_name="train"
    )
    train(cfg)
    stopped = Path(cfg.paths.output_dir)
    with_resume = compose_cfg(
        *FAST,
        f"data.root={photos}",
        *common,
        f"trainer.max_steps={2 * at}",
        "ckpt_path=last",
        config_name="train",
    )
    with_resume.paths.output_dir = str(stopped)
    train(with_resume)
    a = checkpoint_state(whole / "checkpoints" / "last.ckpt")
    b = checkpoint_state(stopped / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 2 * at
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for sa, sb in zip(
        a["optimizer_states"][0]["state"].values(),
        b["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k
    assert a["lr_schedulers"] == b["lr_schedulers"]


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (("composites.enabled=false",), UserError, "loss 'soft_ce' needs label sets"),
        (("split.heldout_classes=0",), DataError, "leaves no held-out image"),
        (("split.heldout_classes=24",), DataError, "leaves no class to train"),
        (("ckpt_path=last",), UserError, "checkpoints/last.ckpt does not exist"),
        (("ckpt_path=/tmp",), UserError, "ckpt_path=/tmp: /tmp is a folder, not a checkpoint"),
        (("init_from=/tmp",), UserError, "init_from=/tmp: /tmp is a folder, not a checkpoint"),
        (("trainer.precision=16-mixed",), UserError, "needs a GPU"),
        (("preprocess.std=[0,0,0]",), UserError, "preprocess.std values must be positive"),
        (("finetune.mode=full", "loss.keep_unseen=1"), UserError, "needs finetune.mode=head"),
        (("loss.keep_unseen=2",), UserError, "loss.keep_unseen=2 is out of range"),
        (("loss=ce", "composites.enabled=false", "+loss.keep_unseen=1"), UserError, "multi-label"),
    ],
)
def test_bad_input_is_one_error_and_no_results(compose_cfg, photos, overrides, error, message):
    cfg = compose_cfg(
        *FAST, f"data.root={photos}", "trainer.max_epochs=1", *overrides, config_name="train"
    )
    with pytest.raises(error, match=message):
        check_train_settings(cfg)  # as train.py runs them: the settings, then the task
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_a_checkpoint_of_another_model_is_refused(compose_cfg, photos, tmp_path) -> None:
    import timm

    other = tmp_path / "other.ckpt"
    torch.save(
        {"state_dict": timm.create_model("test_efficientnet", num_classes=10).state_dict()}, other
    )
    cfg = compose_cfg(*FAST, f"data.root={photos}", f"ckpt_path={other}", config_name="train")
    with pytest.raises(ModelError, match="is of another model"):
        train(cfg)


def test_a_label_set_trains_with_a_stratified_split(compose_cfg, tmp_path) -> None:
    """A user's folder + label file: 4 classes x 6 photos, label sets of 1-2 classes,
    one image with an empty label set (left out of the multi-label loss, counted)."""
    root = tmp_path / "files"
    root.mkdir()
    photos = sorted(DEMO_ROOT.glob("*.JPEG"))[:24]
    single, multi = {}, {}
    for i, path in enumerate(photos):
        shutil.copy(path, root / path.name)
        single[path.name] = i % 4
        multi[path.name] = (
            [] if i == 5 else sorted({i % 4, (i % 4 + 1) % 4} if i % 3 == 0 else {i % 4})
        )
    (tmp_path / "single.json").write_text(json.dumps(single))
    (tmp_path / "multi.json").write_text(json.dumps(multi))
    cfg = compose_cfg(
        *FAST,
        "data=files",
        f"data.root={root}",
        f"data.labels_file={tmp_path / 'single.json'}",
        "labels=file",
        f"labels.path={tmp_path / 'multi.json'}",
        "composites.enabled=false",
        "split.heldout_classes=1",
        "split.heldout_fraction=0.34",
        "trainer.max_epochs=1",
        "loss=soft_ce",
        config_name="train",
    )
    metrics, out = train(cfg), Path(cfg.paths.output_dir)
    run = RunDir(out)
    split = json.loads((out / "split.json").read_text())
    assert run.datasets == ["heldout_seen", "heldout_classes", "single_photos"]
    (unseen,) = split["heldout_classes"]
    assert split["counts"]["heldout_classes"] == 6
    # 2 of each trained class's 6 photos held out; photos naming the unseen class too
    names_unseen = {n for n, labels in multi.items() if unseen in labels}
    assert names_unseen.isdisjoint(split["files"]["train"])
    assert split["counts"]["train"] + split["counts"]["heldout_seen"] == 18
    empty = photos[5].name in split["files"]["train"]
    assert run.info["training_data"]["train_empty_label_sets_left_out"] == int(empty)
    assert metrics["heldout_seen/finetuned.num_images"] == split["counts"]["heldout_seen"]


@pytest.mark.slow
def test_hydra_multirun_of_two_settings(tmp_path: Path, photos: Path) -> None:
    proc = train_py(
        "-m",
        *FAST,
        f"data.root={photos}",
        "trainer.max_epochs=1",
        "optim.lr=1e-3,1e-2",
        "final_eval=features",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lrs = []
    for job in (tmp_path / "sweep").glob("*/metrics.json"):  # folders named by overrides
        run = RunDir(job.parent)
        lrs.append(run.info["optimizer"]["lr"])
        assert "heldout_classes" in run.metrics
    assert sorted(lrs) == [1e-3, 1e-2]


@pytest.mark.slow
def test_optuna_search_maximises_the_held_out_metric(tmp_path: Path, photos: Path) -> None:
    """hparams_search=optuna_head (hydra-optuna-sweeper): each trial returns
    ``optimized_metric`` to the sweeper, which reports the best trial's value and settings."""
    import yaml

    sweep = tmp_path / "sweep"
    proc = run_train(
        "hparams_search=optuna_head",
        *FAST,
        f"data.root={photos}",
        "trainer.max_epochs=1",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=3",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    jobs = {  # folders named by their overrides: in trial order (ties go to the first)
        yaml.safe_load((p.parent / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["num"]: (
            p.parent
        )
        for p in sweep.glob("*/metrics.json")
    }
    runs = [RunDir(jobs[num]) for num in sorted(jobs)]
    assert len(runs) == 3
    values = [r.metrics["train_recombined"]["finetuned.vartopk_strict"] for r in runs]
    assert best["best_value"] == pytest.approx(max(values))
    trial = runs[values.index(max(values))]
    assert trial.info["optimizer"]["lr"] == pytest.approx(best["best_params"]["optim.lr"])
    assert len({r.info["optimizer"]["lr"] for r in runs}) == 3  # the sampler drew settings


# 2 processes vs 1 (measured on this 2-core machine): classifier 1.0e-8, held-out logits
# 4.7e-10 (the tiny model's are small: |logit| < 0.05); the default model on the demo run,
# 130 steps: 7.2e-7 and 6.0e-6. Allowed: 100x the measured, a thousandth of one Adam step
# (lr 1e-3) on the weights; accuracies must agree exactly, nll and ece to float rounding.
TOL_WEIGHTS, TOL_LOGITS = 1e-6, 1e-7


def run_train(*args: str) -> subprocess.CompletedProcess:
    """``python train.py args...``, one torch thread per process (as its DDP ranks get)."""
    return train_py(*args, env=ONE_THREAD)


@pytest.mark.slow
@pytest.mark.ddp
def test_two_processes_train_the_head_as_one_process_does(tmp_path: Path, photos: Path) -> None:
    """trainer=ddp on 2 CPU processes (gloo), 4 cached feature rows each per step, against
    one process with 8: the same global batches (each one's rows dealt out over the ranks),
    and DDP averages the ranks' mean gradients, so the same mean summed in another order.
    The pretrained pass is exact on any number of processes; after training the classifier
    and the held-out logits agree to float32 rounding, and the metrics exactly."""
    common = (
        *(o for o in FAST if not o.startswith("train_batch_size")),
        "model.name=test_batch_sensitive",  # the pretrained pass: each image in its batch
        f"data.root={photos}",
        "trainer.max_epochs=2",
        "num_workers=0",
        "callbacks=none",
        "trainer.accelerator=cpu",
    )
    runs = {}
    for world, batch in ((1, 8), (2, 4)):
        out = tmp_path / f"world{world}"
        proc = run_train(
            *common,
            "trainer=ddp",
            f"trainer.devices={world}",
            f"train_batch_size={batch}",
            f"hydra.run.dir={out}",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[world] = out
        assert RunDir(out).info["trainer"]["world_size"] == world
    one, two = (RunDir(runs[w]) for w in (1, 2))
    assert one.info["steps"]["global_step"] == two.info["steps"]["global_step"] == 4
    a = checkpoint_state(runs[1] / "checkpoints" / "last.ckpt")["state_dict"]
    b = checkpoint_state(runs[2] / "checkpoints" / "last.ckpt")["state_dict"]
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=TOL_WEIGHTS)
    for name in one.datasets:
        torch.testing.assert_close(
            one.predictions(f"{name}@pretrained")["logits"],
            two.predictions(f"{name}@pretrained")["logits"],
            rtol=0,
            atol=0,
        )
        torch.testing.assert_close(
            one.predictions(name)["logits"],
            two.predictions(name)["logits"],
            rtol=1e-4,
            atol=TOL_LOGITS,
        )
        moved = one.predictions(name)["logits"] - one.predictions(f"{name}@pretrained")["logits"]
        assert np.abs(moved).max() > 100 * TOL_LOGITS  # training changed what is compared
        m1, m2 = one.metrics[name], two.metrics[name]
        assert m1.keys() == m2.keys()
        exact = [k for k in m1 if not k.endswith(("nll", "ece", "ece_multilabel"))]
        np.testing.assert_equal([m1[k] for k in exact], [m2[k] for k in exact])  # NaN == NaN
        assert m1 == pytest.approx(m2, rel=1e-5, abs=1e-9, nan_ok=True)


@pytest.mark.slow
def test_cli_bad_input_is_one_line(tmp_path: Path, photos: Path) -> None:
    proc = train_py(
        *FAST, f"data.root={photos}", "ckpt_path=last", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert proc.returncode == 2
    assert "last.ckpt does not exist" in error_line(proc)


def test_stored_features_read_back_as_written(tmp_path: Path) -> None:
    from imagenet_multilabel.scoring.metrics.buffer import Predictions
    from imagenet_multilabel.tasks.feature_cache import read_features, write_features

    valid = torch.rand(3, 1000) > 0.99
    gathered = {
        "a": (torch.randn(3, 8), Predictions(torch.randn(3, 1000), torch.arange(3), valid)),
        "b": (torch.randn(2, 8), Predictions(torch.randn(2, 1000), torch.arange(2), None)),
    }
    write_features(tmp_path / "f.pt", gathered)
    back = read_features(tmp_path / "f.pt", {"a": 3, "b": 2})
    for name, (features, preds) in gathered.items():
        assert torch.equal(back[name][0], features)
        assert torch.equal(back[name][1].logits, preds.logits)
        assert (back[name][1].valid is None) == (preds.valid is None)

"""Every YAML under conf/ composes (the folder listed, not a hand list), and every labels/
and data/ YAML instantiates its target."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from imagenet_multilabel.builders import build_dataset
from imagenet_multilabel.data.datasets.folders import ImageDataset
from imagenet_multilabel.data.labels.sets import LabelSet, load_label_set
from tests.helpers import REPO

CONF = REPO / "conf"


def _node(group: str, name: str, **overrides):
    cfg = OmegaConf.load(CONF / group / f"{name}.yaml")
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


# every YAML of conf/, as a path relative to it: a new file is tested without being listed
CONF_FILES = sorted(p.relative_to(CONF).as_posix() for p in CONF.rglob("*.yaml"))
# groups only train.py's primary config has
TRAIN_GROUPS = ("loss", "optim", "sched", "experiment", "hparams_search")


@pytest.mark.parametrize("path", CONF_FILES)
def test_every_yaml_under_conf_composes(path: str, compose_cfg) -> None:
    """A primary config composes as it is; an option of a group composes when chosen
    (``group=option``, in train.py's config for train's groups) and is then the choice
    Hydra records."""
    group, _, name = path.removesuffix(".yaml").rpartition("/")
    if not group:
        cfg = compose_cfg(config_name=name)
        assert cfg.hydra.job.config_name == name
        return
    primary = "train" if group.split("/")[0] in TRAIN_GROUPS else "evaluate"
    if group == "hydra":  # hydra: evaluate extends hydra/default, both composed by evaluate
        cfg = compose_cfg(config_name=primary)
        assert name in ("default", "evaluate") and cfg.hydra.run.dir
        return
    cfg = compose_cfg(f"{group}={name}", config_name=primary)
    assert cfg.hydra.runtime.choices[group] == name


def test_conf_files_are_listed_from_the_folder() -> None:
    """The list above holds the options no hand list had (tsipras, auto) and every group."""
    assert {"labels/tsipras.yaml", "labels/auto.yaml", "hydra/launcher/submitit_slurm.yaml"} <= set(
        CONF_FILES
    )
    assert {p.split("/")[0] for p in CONF_FILES if "/" in p} == {
        p.name for p in CONF.iterdir() if p.is_dir()
    }


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "labels").glob("*.yaml")))
def test_label_configs(name: str, tmp_path: Path) -> None:
    shankar = tmp_path / "h.pickle"
    shankar.write_bytes(
        pickle.dumps({"image_labels": {"ILSVRC2012_val_00000001.JPEG": {"correct": []}}})
    )
    user = tmp_path / "l.json"
    user.write_text(json.dumps({"a.jpg": [1]}))
    paths = {"shankar": str(shankar), "file": str(user)}
    cfg = _node("labels", name, **({"path": paths[name]} if name in paths else {}))
    if name == "auto":  # no set of its own: the dataset's default, chosen when it is built
        assert cfg == {"name": "auto"}
        return
    assert cfg.name == name and cfg.allow_missing is False
    if "_target_" not in cfg:
        assert name == "none"
        return
    labels, allow_missing = load_label_set(cfg)
    assert isinstance(labels, LabelSet) and len(labels) > 0 and allow_missing is False


def test_data_configs(flat_val: Path, tmp_path: Path, put_photo, compose_cfg) -> None:
    (flat_val / "val_labels.txt").write_text("ILSVRC2012_val_00000001.JPEG 65\n")
    for f in flat_val.glob("*.JPEG"):
        if f.name != "ILSVRC2012_val_00000001.JPEG":
            f.unlink()
    put_photo(100, tmp_path / "v2" / "100" / "a.jpeg")
    (tmp_path / "lab.csv").write_text("a.jpeg,100\n")
    overrides = [
        ("data=imagenet", f"data.root={flat_val}"),
        ("data=imagenetv2", f"data.root={tmp_path / 'v2'}"),
        ("data=files", f"data.root={tmp_path / 'v2'}", f"data.labels_file={tmp_path / 'lab.csv'}"),
    ]
    built = [build_dataset(compose_cfg(*o).data, transform=None) for o in overrides]
    assert all(isinstance(ds, ImageDataset) for ds in built)
    assert [ds.name for ds in built] == ["imagenet", "imagenetv2", "files"]
    assert [ds.targets for ds in built] == [[65], [100], [100]]

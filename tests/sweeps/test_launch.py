"""evaluate.py's command line: model.names= and resume= before Hydra; job folder names."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.sweeps.dirs import MAX_NAME, job_dirname
from imagenet_multilabel.sweeps.launch import prepare_argv, resolve_model_names


def test_model_names_from_lists_patterns_and_files(tmp_path: Path) -> None:
    assert resolve_model_names("[resnet50.a1_in1k,test_vit]") == ["resnet50.a1_in1k", "test_vit"]
    assert resolve_model_names("a, b ,a") == ["a", "b"]
    vits = resolve_model_names("test_vit*")
    assert vits and all(n.startswith("test_vit") and "." in n for n in vits)  # pretrained tags
    names = tmp_path / "models.txt"
    names.write_text("# my sweep\nresnet50.a1_in1k\n\ntest_vit3*  # a pattern\n")
    assert resolve_model_names(f"{names},x1", cwd=tmp_path) == [
        "resnet50.a1_in1k",
        "test_vit3.r160_in1k",
        "x1",
    ]
    assert resolve_model_names("models.txt", cwd=tmp_path)[0] == "resnet50.a1_in1k"
    with pytest.raises(UserError, match="no pretrained timm model matches 'nomodel_\\*'"):
        resolve_model_names("nomodel_*")
    with pytest.raises(UserError, match="neither a timm model name"):
        resolve_model_names("a b")
    with pytest.raises(UserError, match="is empty"):
        resolve_model_names("[]")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UserError, match="lists no model"):
        resolve_model_names("empty.txt", cwd=tmp_path)


def test_model_names_become_a_sweep_of_model_name(tmp_path: Path, capsys) -> None:
    argv = prepare_argv(["evaluate.py", "model.names=[a1,resnet5]", "data=demo"], tmp_path)
    assert argv == ["evaluate.py", "-m", "data=demo", "model=timm", "model.name=a1,resnet5"]
    err = capsys.readouterr().err
    assert "unknown timm model 'resnet5'; close matches: resnet50" in err
    assert "its job will be listed as failed" in err
    argv = prepare_argv(["e.py", "--multirun", "model=test_tiny", "model.names=a,b"], tmp_path)
    assert argv == ["e.py", "--multirun", "model=test_tiny", "model.name=a,b"]
    with pytest.raises(UserError, match="either model.names=... or model.name="):
        prepare_argv(["e.py", "model.names=a", "model.name=b"], tmp_path)
    assert prepare_argv(["e.py", "model=x"], tmp_path) == ["e.py", "model=x"]  # untouched


def test_resume_finds_the_sweep_folder(tmp_path: Path) -> None:
    root = tmp_path / "outputs" / "evaluate" / "multirun"
    with pytest.raises(UserError, match="resume=last: no sweep under"):
        prepare_argv(["e.py", "resume=last"], tmp_path)
    for name in ("2025-01-02_00-00-00", "2025-01-01_00-00-00"):
        (root / name).mkdir(parents=True)
        (root / name / "multirun.yaml").write_text("{}\n")
        time.sleep(0.01)
    past = time.time() - 100
    os.utime(root / "2025-01-02_00-00-00" / "multirun.yaml", (past, past))
    argv = prepare_argv(["e.py", "model=a,b", "resume=last"], tmp_path)
    assert argv == ["e.py", "-m", "model=a,b", f"hydra.sweep.dir={root / '2025-01-01_00-00-00'}"]
    argv = prepare_argv(["e.py", "-m", f"resume={root / '2025-01-02_00-00-00'}"], tmp_path)
    assert argv[-1] == f"hydra.sweep.dir={root / '2025-01-02_00-00-00'}"
    with pytest.raises(UserError, match="is not a sweep folder"):
        prepare_argv(["e.py", f"resume={tmp_path}"], tmp_path)
    with pytest.raises(UserError, match="either resume=... or hydra.sweep.dir"):
        prepare_argv(["e.py", "resume=last", "hydra.sweep.dir=x"], tmp_path)
    # train.py's: the latest under outputs/train/multirun
    with pytest.raises(UserError, match="no sweep under .*outputs/train/multirun"):
        prepare_argv(["train.py", "resume=last"], tmp_path, task="train")
    train = tmp_path / "outputs" / "train" / "multirun" / "2025-01-03_00-00-00"
    train.mkdir(parents=True)
    (train / "multirun.yaml").write_text("{}\n")
    argv = prepare_argv(["train.py", "optim.lr=1,2", "resume=last"], tmp_path, task="train")
    assert argv == ["train.py", "-m", "optim.lr=1,2", f"hydra.sweep.dir={train}"]


def test_job_folder_names() -> None:
    assert job_dirname("data=demo,model=test_tiny") == "data=demo,model=test_tiny"
    assert job_dirname("") == "default"
    a, b = job_dirname("data.root=/a/b,model=x"), job_dirname("data.root=/a_b,model=x")
    assert a.startswith("data.root=_a_b,model=x-") and a != b and "/" not in a
    long = job_dirname("model.name=" + "x" * 300)
    assert len(long) == MAX_NAME and long != job_dirname("model.name=" + "x" * 301)

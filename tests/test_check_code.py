"""scripts/check_code.py: each rule finds what breaks it (on a made-up package and text),
and the package keeps its layers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.helpers import REPO


@pytest.fixture(scope="module")
def check_code():
    spec = importlib.util.spec_from_file_location("check_code", REPO / "scripts/check_code.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(root: Path, files: dict[str, str]) -> Path:
    package = root / "imagenet_multilabel"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_the_package_keeps_its_layers(check_code) -> None:
    assert check_code.check_layers() == []


def test_an_import_up_a_layer_is_listed(check_code, tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "core/files.py": "from imagenet_multilabel.tasks.evaluate import evaluate\n",
            "tasks/__init__.py": "",
            "tasks/evaluate.py": "from imagenet_multilabel.core import files\n",
        },
    )
    assert check_code.check_layers(package) == [
        "imagenet_multilabel/core/files.py:1: imports imagenet_multilabel.tasks.evaluate "
        "(tasks is above core)"
    ]
    (package / "extra.py").write_text("")
    assert "imagenet_multilabel/extra: not in any layer of LAYERS" in check_code.check_layers(
        package
    )


def test_names_that_do_not_exist_are_listed(check_code) -> None:
    module = check_code.PACKAGE / "sweeps" / "job.py"
    bases = [module.parent, check_code.REPO, check_code.PACKAGE]
    text = (
        "see ``runs/rundir.py``, :mod:`.launch`, :func:`core.distributed.hydra_job` and "
        "`python -m imagenet_multilabel.entry.rank_worker`; gone: ``runs/gone.py``, "
        ":mod:`.jobs`, :func:`cli.run_task`, data/nowhere.py and "
        "`python -m imagenet_multilabel.commands.run`"
    )
    assert list(check_code._names_in(text, bases, module=module)) == [
        "runs/gone.py",
        ".jobs",
        "cli.run_task",
        "imagenet_multilabel.commands.run",
        "data/nowhere.py",
    ]


def test_names_in_tests_and_benchmarks_are_read(check_code, tmp_path: Path) -> None:
    """The docstrings and comments of tests/ and benchmarks/ are read as src/'s are."""
    for folder in ("docs", "src", "tests", "benchmarks"):
        (tmp_path / folder).mkdir()
    (tmp_path / "README.md").write_text("")
    (tmp_path / "tests" / "test_a.py").write_text(
        '"""Beside ``tests/test_a.py``; gone: ``tests/gone.py``."""\n\n'
        "X = 1  # see data/nowhere.py\n"
    )
    (tmp_path / "benchmarks" / "b.py").write_text('"""Reads ``benchmarks/gone/``."""\n')
    assert check_code.check_names(tmp_path) == [
        "benchmarks/b.py:1: names benchmarks/gone/, which does not exist",
        "tests/test_a.py:3: names data/nowhere.py, which does not exist",
        "tests/test_a.py:1: names tests/gone.py, which does not exist",
    ]


def test_an_import_inside_a_function_must_say_why(check_code, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "m.py").parent.mkdir()
    (src / "m.py").write_text(
        "def said():\n    # torch: not at start-up\n    import torch\n\n\n"
        "def grouped():\n    # heavy, both\n    import torch\n\n    import timm\n\n\n"
        "def unsaid():\n    import zlib\n"
    )
    problems = check_code.check_imports(src)
    assert len(problems) == 1 and problems[0].startswith("src/m.py:14: an import inside unsaid()")

"""The suite's use of ``../shared/data`` (tests/shared_audit.py): the package never names
it, and the audit finds a test that reads it, so the plain copy of CI runs that test."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, project_env

# How a module would reach the shared data: its variable, the conf key, the folder.
SHARED_REFERENCE = re.compile(r"IMAGENET_ML_SHARED|shared_data|shared/data|\bSHARED\b")


def test_the_package_never_names_the_shared_data() -> None:
    """A command that a test starts can read ../shared/data only through what the test
    gives it (which marks the test 'shared'): no module of the package names it."""
    named = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "src").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SHARED_REFERENCE.search(line)
    ]
    assert named == []


def _pytest(folder: Path, *args: str, shared: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=folder,
        env=project_env(extra={"IMAGENET_ML_SHARED": str(shared), "PYTHONPATH": str(REPO)}),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_test_reading_the_shared_data_runs_in_the_plain_copy(tmp_path: Path) -> None:
    """In a suite of three tests, the one that opens a file under the shared data (through
    another module, as the tests' photos are) is logged by the checkout's run, and the plain
    copy's run (``--shared-from LOG -m shared``) runs it and no other; a logged test that
    is not collected stops that run."""
    shared = tmp_path / "shared"
    (shared / "labels").mkdir(parents=True)
    (shared / "labels" / "x.txt").write_text("x")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["tests.shared_audit"]\n')
    (suite / "reader.py").write_text(
        "import os\n"
        "def read():\n"  # the shared copy when it is there, else a stand-in (as photo() does)
        "    path = os.path.join(os.environ['IMAGENET_ML_SHARED'], 'labels/x.txt')\n"
        "    return open(path).read() if os.path.exists(path) else 'x'\n"
    )
    (suite / "test_three.py").write_text(
        "import reader\n"
        "def test_reads():\n    assert reader.read() == 'x'\n"
        "def test_plain():\n    assert 1\n"
        "def test_also_plain(tmp_path):\n    (tmp_path / 'y').write_text('y')\n"
    )
    log = tmp_path / "shared.log"
    checkout = _pytest(suite, f"--shared-log={log}", "-p", "pytester", shared=shared)
    assert checkout.returncode == 0, checkout.stdout
    assert log.read_text().split() == ["test_three.py::test_reads"]

    plain = _pytest(suite, f"--shared-from={log}", "-m", "shared", "-rA", shared=tmp_path / "no")
    assert plain.returncode == 0, plain.stdout
    ran = re.findall(r"PASSED (test_three\.py::\w+)", plain.stdout)
    assert ran == ["test_three.py::test_reads"], plain.stdout

    log.write_text("test_three.py::test_gone\n")
    stale = _pytest(suite, f"--shared-from={log}", "-m", "shared", shared=shared)
    assert stale.returncode != 0
    assert "not collected here" in stale.stdout + stale.stderr

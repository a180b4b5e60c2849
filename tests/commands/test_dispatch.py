"""``python -m imagenet_multilabel <command>``: the package's one entry besides the root
scripts."""

import pytest

from imagenet_multilabel.__main__ import COMMANDS
from tests.helpers import REPO, error_line, run


def test_every_command_has_its_module_and_help_lists_them() -> None:
    for name in COMMANDS:
        assert (REPO / "src/imagenet_multilabel/commands" / f"{name}.py").is_file(), name
    proc = run(["-m", "imagenet_multilabel", "--help"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)


def test_unknown_or_missing_command_is_one_line_exit_2() -> None:
    proc = run(["-m", "imagenet_multilabel", "evaluate"], timeout=60)
    assert proc.returncode == 2
    assert error_line(proc) == (
        "error: unknown command 'evaluate': use one of " + ", ".join(COMMANDS)
    )
    assert run(["-m", "imagenet_multilabel"], timeout=60).returncode == 2


@pytest.mark.slow
def test_a_command_runs_with_its_arguments(tmp_path) -> None:
    """The dispatcher hands the rest of the line to the command (here ``stats``, a Hydra
    command: its overrides and its own run folder)."""
    out = tmp_path / "stats"
    proc = run(
        ["-m", "imagenet_multilabel", "stats", "labels=real", f"hydra.run.dir={out}"],
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "real" in proc.stdout
    assert (out / ".hydra" / "overrides.yaml").read_text().count("labels=real") == 1

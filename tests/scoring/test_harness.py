"""Every public metric through the project's harness (tests/scoring/harness.py), and the
harness itself checked: it passes torchmetrics' ``MultilabelAveragePrecision`` (a metric
known to be right; one finding: its compute() hands out its cache) and fails a metric
broken on purpose for each check. ``python -m tests.scoring.harness`` prints the table of
docs/metrics-api.md."""

from __future__ import annotations

import pytest

from tests.scoring.harness import BUGS, CHECKS, DISTRIBUTED, case_table, run_check, run_distributed


@pytest.mark.parametrize("check", list(CHECKS))
def test_every_public_metric_passes(check: str) -> None:
    for case in case_table("ours"):
        assert run_check(CHECKS[check], case) == "pass", case.name


def test_the_harness_passes_a_right_metric_and_fails_each_broken_one() -> None:
    (reference,) = case_table("reference")
    broken = {c.name: c for c in case_table("broken")}
    passed = {check: run_check(fn, reference) for check, fn in CHECKS.items()}
    # torchmetrics returns its cached result: a caller's in-place edit reaches the next call
    assert {c for c, r in passed.items() if r != "pass"} == {"compute returns a fresh result"}
    for check, fn in CHECKS.items():
        assert run_check(fn, broken[f"broken: {BUGS[check]}"]).startswith("FAIL"), check


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.parametrize("world", [2, 3])
def test_distributed_checks_on_gloo(world: int, tmp_path) -> None:
    """One spawn of ``world`` processes runs the distributed checks of every case: uneven
    shards (a rank may get no image), a compute() that fails on every rank then reset()."""
    results = run_distributed("ddp", world, tmp_path)
    for case in case_table("ours"):
        assert results[case.name] == dict.fromkeys(DISTRIBUTED, "pass"), case.name
    assert results["torchmetrics MultilabelAveragePrecision"] == {
        DISTRIBUTED[0]: "pass",
        DISTRIBUTED[1]: "n/a",
    }
    for check in DISTRIBUTED:
        assert results[f"broken: {BUGS[check]}"][check].startswith("FAIL"), check

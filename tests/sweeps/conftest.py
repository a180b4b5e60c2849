"""Fixtures of the sweep tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real Slurm on this machine, with accounting (tests/sweeps/slurm_cluster.py): two nodes,
    each a slurmd of this machine (partition ``cpu``, the default, has the first alone;
    ``all`` both); installed where missing (root, apt), started for the session, stopped
    at its end. Skips with the reason where Slurm can neither be found nor installed."""
    from tests.sweeps.slurm_cluster import Unavailable, start_cluster

    try:
        cluster = start_cluster(nodes=2)
    except Unavailable as e:
        pytest.skip(str(e))
    print(f"slurm cluster up in {cluster.startup_s:.1f} s ({cluster.root})")
    yield cluster
    cluster.stop()

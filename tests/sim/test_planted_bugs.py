"""Planted bugs (tests/sim/planted.py) must make the simulation fail: each test runs seeds from 0 until one
fails and reports how many it took (-s shows it). Runs are deterministic, so a test fails only if a change
to the simulation or the core makes the bug invisible over its whole seed budget. Each bug runs in the
flavor of faults that exposes it soonest (simulation.FLAVORS); `python scripts/sim_campaign.py --plant NAME
--flavor F --members N --until-failure` measures it again, and without --flavor over the seeds' own mix."""

from __future__ import annotations

import pytest

from tests.sim.planted import PLANTED
from tests.sim.simulation import failure_of

CASES = [
    ("follower_local_reads", 3, None, 20),
    ("follower_local_reads", 5, None, 20),
    ("old_term_commit", 3, "figure8", 200),
    ("forget_vote", 3, "crashy", 60),
    ("ack_before_fsync", 1, None, 20),
    ("ack_before_fsync", 3, None, 20),
]
"""(bug, cluster size, flavor (None: the seed's choice), how many seeds may run before one must fail)."""


@pytest.mark.parametrize(("bug", "members", "flavor", "limit"), CASES)
def test_the_simulation_catches_the_planted_bug(bug, members, flavor, limit):
    assert set(PLANTED) == {case[0] for case in CASES}
    with PLANTED[bug]():
        for seed in range(limit):
            why = failure_of(seed, members, flavor)
            if why is not None:
                print(f"{bug}, {members} members: caught at seed {seed} ({seed + 1} seeds run): {why.splitlines()[0]}")
                return
    raise AssertionError(f"{bug}: no seed of {limit} failed")

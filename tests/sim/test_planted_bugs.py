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
    ("follower_local_reads", 3, None, 20, True),
    ("follower_local_reads", 5, None, 20, True),
    ("old_term_commit", 3, "figure8", 200, True),
    ("forget_vote", 3, "crashy", 60, True),
    ("ack_before_fsync", 1, None, 20, True),
    ("ack_before_fsync", 3, None, 20, True),
    ("ack_before_fsync", 1, None, 20, False),
]
"""(bug, cluster size, flavor (None: the seed's choice), how many seeds may run before one must fail, whether
the Raft invariants run: without them, only lincheck, from what the clients saw, can catch the bug)."""


@pytest.mark.parametrize(("bug", "members", "flavor", "limit", "invariants"), CASES)
def test_the_simulation_catches_the_planted_bug(bug, members, flavor, limit, invariants):
    assert set(PLANTED) == {case[0] for case in CASES}
    with PLANTED[bug]():
        for seed in range(limit):
            why = failure_of(seed, members, flavor, check_invariants=invariants)
            if why is not None:
                print(
                    f"{bug}, {members} members{'' if invariants else ', lincheck only'}:"
                    f" caught at seed {seed} ({seed + 1} seeds run): {why.splitlines()[0]}"
                )
                return
    raise AssertionError(f"{bug}: no seed of {limit} failed")

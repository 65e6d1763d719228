"""Planted bugs (tests/sim/planted.py) must make the simulation fail: each test runs seeds from 0 until one
fails and reports how many it took. The limits are a few times what each bug needed when written (see the
report printed with -s; `python scripts/sim_campaign.py --plant NAME --until-failure` measures it again)."""

from __future__ import annotations

import pytest

from tests.sim.planted import PLANTED
from tests.sim.simulation import failure_of

LIMITS = {
    "follower_local_reads": (3, 20),
    "old_term_commit": (5, 60),
    "forget_vote": (5, 60),
    "ack_before_fsync": (None, 20),
}
"""bug -> (cluster size, or None for the seed's choice; how many seeds may run before one must fail)."""


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_the_simulation_catches_the_planted_bug(bug):
    members, limit = LIMITS[bug]
    with PLANTED[bug]():
        for seed in range(limit):
            why = failure_of(seed, members)
            if why is not None:
                print(f"{bug}: caught at seed {seed} ({seed + 1} seeds run): {why.splitlines()[0]}")
                return
    raise AssertionError(f"{bug}: no seed of {limit} failed")

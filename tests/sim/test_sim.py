"""The seeded cluster simulation (tests/sim/simulation.py) in CI: every seed must keep Raft's invariants after
every event and give a linearizable history.

ETCDX_SIM_SEEDS sets how many seeds run (CI default 100: seeds 0..99, cluster sizes and flavors as each seed
chooses them). The long campaign and the exact replay of one seed: scripts/sim_campaign.py.
"""

from __future__ import annotations

import os

import pytest

from tests.sim.simulation import run

SEEDS = int(os.environ.get("ETCDX_SIM_SEEDS", "100"))
CHUNK = 25


@pytest.mark.parametrize("first", range(0, SEEDS, CHUNK))
def test_every_seed_is_safe_and_linearizable(first):
    sizes = set()
    for seed in range(first, min(first + CHUNK, SEEDS)):
        outcome = run(seed)
        assert outcome.ok, f"seed {seed} (replay: python scripts/sim_campaign.py --seed {seed} -v):\n{outcome.report}"
        assert outcome.answered > 0, f"seed {seed}: no client request was answered"
        sizes.add(outcome.members)
    assert sizes == {1, 3, 5}, f"seeds {first}.. ran only clusters of {sorted(sizes)} members"


def test_a_seed_replays_exactly():
    """Same seed, same run: the history (every call, return and response) is identical."""
    a, b = run(7, judge_history=False), run(7, judge_history=False)
    assert a.history and a.history == b.history
    assert a.faults == b.faults

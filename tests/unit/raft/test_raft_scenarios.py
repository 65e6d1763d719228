"""Golden interaction scenarios (tests/raft_scenarios/*.txt): each command's output must match the file.
After a deliberate behaviour change, ETCDX_RAFT_REWRITE=1 rewrites the files; review the diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from raft_scenarios import run_file

SCENARIOS = sorted((Path(__file__).parents[2] / "raft_scenarios").glob("*.txt"))


def test_there_are_scenarios():
    assert len(SCENARIOS) >= 8


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_output_matches(path):
    expected, actual = run_file(path)
    assert actual == expected

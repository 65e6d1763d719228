"""A short leader drill in CI (scripts/leader_drill.py runs the long one): a 3-member cluster under 4
clients while its leader is killed with kill -9 three times; every client history, with failover
between members, must be linearizable, and a new leader must come each time."""

from __future__ import annotations

import pytest

from tests.support.leader_drill import drill
from tests.support.lincheck import LINEARIZABLE, VIOLATION

pytestmark = pytest.mark.campaign  # CI runs it once, with the compiled extensions (scripts/test.sh)


def test_leader_kills_under_load_keep_the_history_linearizable(tmp_path):
    report = drill(tmp_path, seconds=20, kill_every=3, clients=4)
    print(report.summary())
    assert report.kills >= 3
    assert report.verdict == LINEARIZABLE, report.report
    assert report.operations > 100  # the clients did work through the kills


def test_the_drill_catches_followers_answering_linearizable_reads_locally(tmp_path):
    """The planted bug the checker exists for: reads served without ReadIndex see stale state."""
    planted = ("-m", "tests.support.planted_etcdx", "local-reads")
    report = drill(tmp_path, seconds=20, kill_every=3, clients=4, command=planted)
    print(report.summary())
    assert report.verdict == VIOLATION, report.report

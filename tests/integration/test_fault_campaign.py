"""A short fault campaign in CI (scripts/fault_campaign.py runs the long one): a 3-member etcdx cluster, peers
behind proxies that cut traffic, one member on LazyFS, under KV and watch traffic while a seeded schedule
injects kill -9, SIGSTOP pauses, symmetric and one-way partitions and slow fsync. Every history must be
linearizable, every watch stream complete and in order, no acknowledged write lost, the members' HashKV
equal, and the cluster healthy again after each fault. A planted bug shows the campaign catches one."""

from __future__ import annotations

import time

from tests.support.faults.campaign import campaign
from tests.support.faults.cluster import fault_cluster, status
from tests.support.faults.proxy import BLACKHOLE
from tests.support.lincheck import VIOLATION


def test_a_partitioned_leader_is_replaced_and_rejoins_once_healed(tmp_path):
    """The proxies really cut: a leader cut off in both directions loses its leadership to another member."""
    cluster = fault_cluster(tmp_path, slow_disk=False)
    try:
        cluster.start()
        leader = cluster.leader()
        assert leader is not None
        for member in cluster.members:
            if member is not leader:
                cluster.proxies.cut(leader.member_id, member.member_id, BLACKHOLE)
                cluster.proxies.cut(member.member_id, leader.member_id, BLACKHOLE)
        deadline = time.monotonic() + 15
        others = [m for m in cluster.members if m is not leader]
        while time.monotonic() < deadline:
            leaders = set()
            for member in others:
                leaders.add(status(member.endpoint).leader)
            if len(leaders) == 1 and leader.member_id not in leaders and 0 not in leaders:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the members cut off from the leader elected no other leader")
        assert cluster.proxies.frames_dropped > 0
        cluster.proxies.heal()
        assert cluster.wait_healthy(20) is not None
    finally:
        cluster.stop()


def test_short_fault_campaign_finds_no_violation(tmp_path):
    report = campaign(tmp_path, faults=10, seed=3, faults_per_run=10)
    print(report.summary())
    assert report.injected == 10
    assert len(report.faults) >= 4, report.faults  # the seed draws most kinds
    assert report.operations > 500 and report.watch_events > 100
    assert report.passed, report.summary()


def test_the_campaign_catches_followers_answering_linearizable_reads_locally(tmp_path):
    """The planted bug (tests/support/planted_etcdx.py): a partitioned or paused member answers
    "linearizable" reads from its stale state, which the linearizability check must reject."""
    planted = ("-m", "tests.support.planted_etcdx", "local-reads")
    report = campaign(tmp_path, faults=6, seed=5, faults_per_run=6, kinds=("partition", "pause"), command=planted)
    print(report.summary())
    assert report.verdicts[VIOLATION] == 1, report.summary()
    assert not report.passed

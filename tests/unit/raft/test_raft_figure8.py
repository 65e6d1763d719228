"""Raft figure 8, played step by step on five members with the safety checker watching: why a leader must
not commit an entry of an earlier term by counting replicas (Raft §5.4.2). With the rule, the run is safe;
with the rule planted out, the checker catches a committed entry being overwritten."""

from __future__ import annotations

import pytest
import raft_sim
from raft_cluster import Cluster

from etcdx.raft import MessageType
from etcdx.raft import log as raft_log


def deliver_all(cluster: Cluster, inv: raft_sim.Invariants, stop_after=None) -> None:
    """Deliver and process until quiet; if stop_after(msg) is true for a delivered message, cut the network
    between its sender and receiver right after it (what a crash or a partition does at that moment)."""
    for _ in range(100):
        busy = False
        for member in sorted(cluster.members):
            while cluster.process_ready(member) is not None:
                busy = True
                inv.check()
        pending, cluster.network = cluster.network, []
        for msg in pending:
            busy = True
            cluster.deliver(msg)
            inv.check()
            if stop_after is not None and stop_after(msg):
                cluster.cut |= {(msg.sender, msg.to), (msg.to, msg.sender)}
        if not busy:
            return


def play_figure_8() -> Cluster:
    cluster = Cluster([1, 2, 3, 4, 5], pre_vote=False, check_quorum=False, max_size_per_msg=1)
    inv = raft_sim.Invariants(cluster)
    cluster.elect(1)  # term 1, every log [1/1]
    inv.check()

    # (a) S1 leads; its entry 2 reaches S2 only.
    cluster.partition([1, 2], [3, 4, 5])
    cluster.members[1].node.propose(b"a")
    deliver_all(cluster, inv)

    # (b) S1 is cut off; S5 is elected by S3, S4 and itself, appends 2/2, and is cut off before sending it.
    cluster.restart(1)  # S1 crashes
    cluster.partition([1], [2], [3, 4, 5])
    cluster.members[5].node.campaign()
    deliver_all(cluster, inv, stop_after=lambda m: m.type is MessageType.VOTE_RESP and m.to == 5)
    assert cluster.members[5].node.raft.role.value == "leader"
    assert [e.term for e in cluster.log_of(5)] == [1, 2]

    # (c) S1 comes back, is elected (term 3) by S2 and S3 and copies its entry 2 (term 1) to S3. S3's
    # acknowledgement of index 2 arrives; then S1 is cut off before S3 gets the entry of term 3.
    cluster.restart(5)  # S5 crashes
    cluster.partition([1, 2, 3], [4], [5])
    cluster.members[1].node.campaign()  # term 2: S3 already voted for S5 in it
    deliver_all(cluster, inv)
    cluster.members[1].node.campaign()
    deliver_all(
        cluster,
        inv,
        stop_after=lambda m: m.type is MessageType.APP_RESP and m.sender == 3 and m.index == 2 and not m.reject,
    )
    assert cluster.members[1].node.raft.term == 3
    assert [e.term for e in cluster.log_of(3)] == [1, 1]

    # (d) S5 comes back and is elected by S3, S4 and itself: its log ends with term 2, later than S3's and
    # S4's. It overwrites index 2 everywhere it reaches.
    cluster.restart(1)  # S1 crashes
    cluster.partition([1], [2, 3, 4, 5])
    for _ in range(3):
        cluster.members[5].node.campaign()
        deliver_all(cluster, inv)
        if cluster.members[5].node.raft.role.value == "leader":
            break
    assert cluster.members[5].node.raft.role.value == "leader"
    cluster.members[5].node.propose(b"b")
    deliver_all(cluster, inv)
    return cluster


def test_figure_8_is_safe_with_the_current_term_commit_rule():
    """Reference: Raft §5.4.2, figure 8: S1 (term 3) must not count replicas of index 2 (term 1); it is not
    committed, so S5 may overwrite it."""
    cluster = play_figure_8()
    assert [e.term for e in cluster.log_of(3)][:2] == [1, 2]
    assert all(a[2] != b"a" for a in cluster.members[3].applied)


def test_figure_8_catches_a_leader_committing_an_earlier_terms_entry(monkeypatch):
    """Planted bug: the leader commits any index a majority holds, whatever its term."""

    def commit_by_counting(self, index, term):
        if index > self.committed:
            self.commit_to(index)
            return True
        return False

    monkeypatch.setattr(raft_log.RaftLog, "maybe_commit", commit_by_counting)
    with pytest.raises(raft_sim.SafetyViolation):
        play_figure_8()

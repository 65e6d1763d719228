"""Seeded random clusters (drops, duplicates, reordering, partitions, crashes losing unpersisted state,
compaction, asynchronous persistence) with Raft's safety properties asserted after every step.

ETCDX_RAFT_SEEDS sets how many seeds run per cluster size (CI default 150). A longer campaign, or the exact
replay of a failing seed: `PYTHONPATH=.:tests/unit/raft python tests/unit/raft/raft_sim.py FIRST [COUNT]`.
Planted bugs must make some seed fail; the fourth one (commit by counting an earlier term's entry) is in
test_raft_figure8.py, since random runs rarely reach figure 8's sequence.
"""

from __future__ import annotations

import os

import pytest
import raft_cluster
import raft_sim

from etcdx.raft import HardState, MessageType, ReadState, core

SEEDS = int(os.environ.get("ETCDX_RAFT_SEEDS", "150"))


@pytest.mark.parametrize("members", [1, 3, 5])
def test_safety_holds_for_every_seed(members):
    for seed in range(SEEDS):
        try:
            raft_sim.run(seed, members)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed} with {members} members: {exc}") from exc


CRASHY = [10, 20, 20, 45, 5, 0, 15, 0, 0, 0, 0]
"""Action weights with many crashes and elections and no partitions (see raft_sim.run's action list)."""


def first_failing_seed(members: int, limit: int, weights: list[float] | None = None) -> int | None:
    for seed in range(limit):
        try:
            raft_sim.run(seed, members, weights=weights, check_liveness=False)
        except raft_sim.SafetyViolation:
            return seed
    return None


def test_an_acknowledgement_sent_before_fsync_is_caught(monkeypatch):
    """Planted bug: responses (and the leader's own acknowledgement) leave before the Ready is persisted."""
    monkeypatch.setattr(core, "RESPONSES_AFTER_PERSIST", frozenset())
    real_send = core.Raft.send

    def send_without_waiting(self, m):
        if m.to == self.id and m.type in raft_sim_response_types():
            m.sender = self.id
            self.step(m)
            return
        real_send(self, m)

    monkeypatch.setattr(core.Raft, "send", send_without_waiting)
    assert first_failing_seed(3, 50) is not None


def test_a_member_forgetting_its_vote_on_restart_is_caught(monkeypatch):
    """Planted bug: a restarted member forgets whom it voted for (raftos's bug), so it can vote twice in a
    term and two leaders can win it (Raft §5.2 requires the vote to be durable)."""
    real_restart = raft_cluster.Cluster.restart

    def restart_forgetting_vote(self, member_id):
        s = self.members[member_id].storage
        s.hard_state = HardState(s.hard_state.term, 0, s.hard_state.commit)
        return real_restart(self, member_id)

    monkeypatch.setattr(raft_cluster.Cluster, "restart", restart_forgetting_vote)
    assert first_failing_seed(5, 200, CRASHY) is not None


def test_a_follower_answering_reads_locally_is_caught(monkeypatch):
    """Planted bug: a follower answers ReadIndex with its own commit index instead of asking the leader."""
    real_step_follower = core.step_follower

    def step_follower(r, m):
        if m.type is MessageType.READ_INDEX:
            r.read_states.append(ReadState(r.log.committed, m.context))
            return
        real_step_follower(r, m)

    monkeypatch.setattr(core, "step_follower", step_follower)
    assert first_failing_seed(3, 50) is not None


def raft_sim_response_types():
    return (MessageType.APP_RESP, MessageType.VOTE_RESP, MessageType.PRE_VOTE_RESP)

"""The core's parts on their own: storage, log, progress and in-flight window, quorum arithmetic, pending
reads, conf change checks, messages."""

from __future__ import annotations

import pytest

from etcdx.raft import (
    CompactedError,
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    InvariantViolation,
    MemoryStorage,
    Message,
    MessageType,
    UnavailableError,
    confchange,
    quorum,
)
from etcdx.raft.log import RaftLog
from etcdx.raft.progress import Inflights, Progress, ProgressState
from etcdx.raft.read_only import ReadOnly
from etcdx.raft.tracker import ProgressTracker


def entries(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(t, start + k) for k, t in enumerate(terms)]


# -- storage ---------------------------------------------------------------------------------------------------
def test_memory_storage_overwrites_from_the_first_appended_index():
    s = MemoryStorage()
    s.append(entries(1, 1, 1))
    s.append(entries(2, start=2))
    assert [(e.index, e.term) for e in s.entries(1, 3)] == [(1, 1), (2, 2)]
    assert s.last_index() == 2


def test_memory_storage_refuses_a_gap():
    s = MemoryStorage()
    s.append(entries(1))
    with pytest.raises(InvariantViolation):
        s.append(entries(1, start=3))


def test_memory_storage_compaction_keeps_the_term_of_the_compacted_index():
    s = MemoryStorage()
    s.append(entries(1, 2, 3, 3))
    s.create_snapshot(2, ConfState(frozenset({1})), b"state")
    s.compact(2)
    assert (s.first_index(), s.last_index(), s.term(2)) == (3, 4, 2)
    with pytest.raises(CompactedError):
        s.entries(2, 4)
    with pytest.raises(CompactedError):
        s.term(1)
    with pytest.raises(UnavailableError):
        s.term(5)


def test_memory_storage_entries_respect_the_size_cap_but_return_at_least_one():
    s = MemoryStorage()
    s.append([Entry(1, i, data=b"x" * 100) for i in range(1, 6)])
    assert len(s.entries(1, 6, max_size=1)) == 1
    assert len(s.entries(1, 6, max_size=250)) == 2
    assert len(s.entries(1, 6)) == 5


# -- log -------------------------------------------------------------------------------------------------------
def log_with(*terms: int) -> RaftLog:
    s = MemoryStorage()
    s.append(entries(*terms))
    return RaftLog(s)


def test_the_log_reads_across_storage_and_the_unstable_tail():
    log = log_with(1, 1)
    log.append(entries(2, 2, start=3))
    assert [e.term for e in log.slice(1, 5)] == [1, 1, 2, 2]
    assert (log.last_index(), log.term(4), log.persisted) == (4, 2, 2)


def test_an_overwrite_below_the_persisted_index_lowers_it():
    log = log_with(1, 1, 1)
    log.append(entries(2, start=2))
    assert log.persisted == 1
    assert [e.term for e in log.all_entries()] == [1, 2]


def test_stable_to_ignores_an_entry_since_replaced_in_a_newer_term():
    """A Ready carrying 2/2 is persisted after 2/2 was overwritten by 3/2: 2 is not durable with its term."""
    log = log_with(1)
    log.append(entries(2, start=2))
    assert log.accept_unstable() == (2, 2)
    log.append(entries(3, start=2))
    log.stable_to(2, 2)
    assert log.persisted == 1
    log.stable_to(2, 3)
    assert log.persisted == 2


def test_committed_entries_are_handed_out_only_up_to_the_persisted_index():
    log = log_with(1)
    log.append(entries(1, 1, start=2))
    log.commit_to(3)
    assert [e.index for e in log.next_committed()] == [1]


def test_committed_entries_can_never_be_overwritten():
    log = log_with(1, 1)
    log.commit_to(2)
    with pytest.raises(InvariantViolation):
        log.append(entries(2, start=2))


@pytest.mark.parametrize(
    ("index", "term", "want"),
    [(6, 2, (3, 2)), (6, 5, (6, 4)), (2, 1, (1, 1)), (6, 0, (0, 0))],
)
def test_find_conflict_by_term_finds_the_last_entry_at_or_below_a_term(index, term, want):
    log = log_with(1, 2, 2, 4, 4, 4)
    assert log.find_conflict_by_term(index, term) == want


def test_maybe_commit_needs_the_entry_to_be_of_the_given_term():
    log = log_with(1, 2)
    assert not log.maybe_commit(2, 3)
    assert log.maybe_commit(2, 2) and log.committed == 2


# -- progress --------------------------------------------------------------------------------------------------
def test_a_probing_progress_pauses_after_one_append_and_resumes_on_a_reply():
    pr = Progress(next_index=5, max_inflight=4, max_inflight_bytes=None, learner=False)
    assert not pr.is_paused()
    pr.sent_entries(5, 10)
    assert pr.is_paused()
    assert pr.maybe_decrease_to(4, match_hint=2)
    assert (pr.next, pr.is_paused()) == (3, False)


def test_a_stale_refusal_does_not_move_next():
    pr = Progress(next_index=5, max_inflight=4, max_inflight_bytes=None, learner=False)
    assert not pr.maybe_decrease_to(2, match_hint=0)
    assert pr.next == 5


def test_a_replicating_progress_pauses_when_the_window_fills_and_a_heartbeat_reply_reopens_it():
    pr = Progress(next_index=1, max_inflight=2, max_inflight_bytes=None, learner=False)
    pr.become_replicate()
    pr.sent_entries(1, 10)
    assert not pr.is_paused()
    pr.sent_entries(2, 10)
    assert pr.is_paused() and pr.next == 3
    pr.paused = False  # what a heartbeat response does
    assert not pr.is_paused()
    pr.maybe_update(2)
    pr.inflights.free_le(2)
    assert len(pr.inflights) == 0


def test_inflights_limit_bytes_too():
    inf = Inflights(max_count=10, max_bytes=100)
    inf.add(1, 60)
    assert not inf.full()
    inf.add(2, 60)
    assert inf.full()
    inf.free_le(1)
    assert not inf.full() and inf.bytes == 60


def test_a_progress_waiting_for_a_snapshot_sends_nothing():
    pr = Progress(next_index=1, max_inflight=2, max_inflight_bytes=None, learner=False)
    pr.become_snapshot(10)
    assert pr.is_paused() and pr.state is ProgressState.SNAPSHOT
    pr.become_probe()
    assert pr.next == 11


# -- quorum ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("matches", "want"),
    [([5], 5), ([5, 3, 1], 3), ([5, 5, 1, 1], 1), ([9, 8, 7, 2, 1], 7), ([0, 0, 4], 0)],
)
def test_the_committed_index_is_the_one_a_majority_holds(matches, want):
    voters = list(range(1, len(matches) + 1))
    assert quorum.committed_index(voters, dict(zip(voters, matches, strict=True))) == want


@pytest.mark.parametrize(
    ("voters", "votes", "want"),
    [
        (3, {1: True, 2: True}, quorum.VoteResult.WON),
        (3, {1: True, 2: False}, quorum.VoteResult.PENDING),
        (3, {1: True, 2: False, 3: False}, quorum.VoteResult.LOST),
        (4, {1: True, 2: True}, quorum.VoteResult.PENDING),
        (4, {1: True, 2: True, 3: True}, quorum.VoteResult.WON),
        (4, {1: False, 2: False}, quorum.VoteResult.LOST),
    ],
)
def test_vote_results(voters, votes, want):
    assert quorum.vote_result(range(1, voters + 1), votes) is want


# -- pending reads ---------------------------------------------------------------------------------------------
def test_a_read_confirmed_by_a_quorum_releases_every_read_queued_before_it():
    ro = ReadOnly()
    for ctx, index in ((b"a", 3), (b"b", 4), (b"c", 4)):
        ro.add_request(index, Message(MessageType.READ_INDEX, context=ctx))
    assert ro.last_pending_context() == b"c"
    assert ro.recv_ack(2, b"b") == {2}
    released = ro.advance(b"b")
    assert [(s.request.context, s.index) for s in released] == [(b"a", 3), (b"b", 4)]
    assert ro.queue == [b"c"] and ro.recv_ack(2, b"zzz") is None


# -- conf changes ----------------------------------------------------------------------------------------------
def tracker_for(voters: set[int], learners: set[int] = frozenset(), active: set[int] = frozenset()) -> ProgressTracker:
    t = ProgressTracker(8, None)
    t.set_conf(ConfState(frozenset(voters), frozenset(learners)), 1)
    for m in active:
        t.progress[m].recent_active = True
    return t


@pytest.mark.parametrize(
    ("cc", "voters", "learners", "active", "reason"),
    [
        (ConfChange(ConfChangeType.ADD_NODE, 4), {1, 2, 3}, set(), {2, 3}, None),
        (ConfChange(ConfChangeType.ADD_NODE, 2), {1, 2, 3}, set(), {2, 3}, "member already exists"),
        (ConfChange(ConfChangeType.ADD_NODE, 4), {1, 2, 3}, set(), {2}, "unhealthy cluster"),
        (ConfChange(ConfChangeType.ADD_NODE, 2), {1}, set(), set(), None),
        (ConfChange(ConfChangeType.ADD_NODE, 3), {1, 2}, set(), {2}, None),
        (ConfChange(ConfChangeType.ADD_NODE, 3), {1, 2}, set(), set(), "unhealthy cluster"),
        (ConfChange(ConfChangeType.ADD_LEARNER, 3), {1, 2, 3}, set(), {2, 3}, "member already exists"),
        (ConfChange(ConfChangeType.ADD_LEARNER, 4), {1, 2, 3}, set(), set(), None),
        (ConfChange(ConfChangeType.REMOVE_NODE, 9), {1, 2, 3}, set(), {2, 3}, "member not found"),
        (ConfChange(ConfChangeType.REMOVE_NODE, 1), {1}, set(), set(), "cannot remove the last voter"),
        (ConfChange(ConfChangeType.REMOVE_NODE, 3), {1, 2, 3}, set(), {3}, "unhealthy cluster"),
        (ConfChange(ConfChangeType.REMOVE_NODE, 3), {1, 2, 3}, set(), {2}, None),
        (ConfChange(ConfChangeType.REMOVE_NODE, 4), {1, 2, 3}, {4}, set(), None),
    ],
)
def test_conf_change_checks_mirror_etcds_strict_reconfig_check(cc, voters, learners, active, reason):
    got = confchange.refusal(cc, tracker_for(voters, learners, active), me=1, last_index=10)
    assert (got is None) if reason is None else (got is not None and got.startswith(reason))


def test_a_learner_is_promoted_only_once_nearly_caught_up():
    t = tracker_for({1, 2, 3}, {4}, {2, 3})
    t.progress[4].match = 80
    cc = ConfChange(ConfChangeType.ADD_NODE, 4)
    assert confchange.refusal(cc, t, me=1, last_index=100) == "learner not ready to be promoted"
    t.progress[4].match = 95
    assert confchange.refusal(cc, t, me=1, last_index=100) is None
    assert confchange.apply(t.conf, cc) == ConfState(frozenset({1, 2, 3, 4}), frozenset())


def test_a_lone_voter_promotes_its_caught_up_learner_that_it_hears_from():
    """etcd 3.5.1 promotes the caught-up learner of a one-voter cluster (a lone voter may take a second one)."""
    t = tracker_for({1}, {2})
    t.progress[2].match = 5
    cc = ConfChange(ConfChangeType.ADD_NODE, 2)
    assert confchange.refusal(cc, t, me=1, last_index=10) == "learner not ready to be promoted"
    t.progress[2].match = 10
    t.progress[2].recent_active = True
    assert confchange.refusal(cc, t, me=1, last_index=10) is None


def test_an_active_learner_counts_toward_the_quorum_it_joins():
    """Promoting into 4 voters needs 3 active: two voters and the learner heard from recently make it."""
    t = tracker_for({1, 2, 3}, {4}, {2})
    t.progress[4].match = 100
    cc = ConfChange(ConfChangeType.ADD_NODE, 4)
    assert confchange.refusal(cc, t, me=1, last_index=100).startswith("unhealthy cluster")
    t.progress[4].recent_active = True
    assert confchange.refusal(cc, t, me=1, last_index=100) is None


def test_conf_changes_round_trip_through_entry_data():
    cc = ConfChange(ConfChangeType.ADD_LEARNER, 2**40 + 7)
    assert ConfChange.decode(cc.encode()) == cc
    with pytest.raises(ValueError):
        ConfChange.decode(b"\x00")


def test_a_member_cannot_be_both_voter_and_learner():
    with pytest.raises(ValueError):
        ConfState(frozenset({1, 2}), frozenset({2}))


@pytest.mark.parametrize(
    "bad",
    [{"id": 0}, {"id": 1, "heartbeat_tick": 0}, {"id": 1, "election_tick": 1}, {"id": 1, "max_inflight_msgs": 0}],
)
def test_config_refuses_impossible_settings(bad):
    with pytest.raises(ValueError):
        Config(**bad)


def test_a_leader_waits_while_its_storage_cannot_produce_a_snapshot():
    """Storage.snapshot() may raise SnapshotTemporarilyUnavailableError (a snapshot being made): the leader
    sends nothing and tries again on a later heartbeat response."""
    from raft_cluster import Cluster

    cluster = Cluster([1, 2, 3], pre_vote=False, check_quorum=False)
    cluster.elect(1)
    cluster.isolate(3)
    for data in (b"a", b"b"):
        cluster.members[1].node.propose(data)
    cluster.stabilize()
    leader = cluster.members[1]
    leader.compact(3)
    leader.storage.snapshot_unavailable = True
    cluster.heal()
    cluster.tick(1)
    cluster.stabilize()
    assert leader.node.raft.tracker.progress[3].match == 1
    leader.storage.snapshot_unavailable = False
    cluster.tick(1)
    cluster.stabilize()
    assert leader.node.raft.tracker.progress[3].match == 3
    assert [a[2] for a in cluster.members[3].applied] == [b"a", b"b"]

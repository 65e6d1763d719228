"""Rules of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm",
extended version) and of the Raft thesis (Ongaro 2014), each test naming the section it checks.
Each test sets up members, steps messages or ticks, and checks what the rule says must follow."""

from __future__ import annotations

import random

import pytest
from raft_cluster import Cluster

from etcdx.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDroppedError,
    RawNode,
    Role,
)
from etcdx.raft.messages import RESPONSES_AFTER_PERSIST


def node(
    member: int = 1,
    voters: tuple[int, ...] = (1, 2, 3),
    log_terms: tuple[int, ...] = (),
    term: int = 0,
    vote: int = 0,
    commit: int = 0,
    seed: int = 0,
    **cfg: object,
) -> RawNode:
    """A member whose storage holds entries of the given terms at indexes 1, 2, ... and a hard state."""
    storage = MemoryStorage(ConfState(frozenset(voters)))
    storage.append([Entry(t, i + 1) for i, t in enumerate(log_terms)])
    storage.set_hard_state(HardState(term, vote, commit))
    options = {"pre_vote": False, "check_quorum": False, **cfg}
    return RawNode(Config(id=member, **options), storage, random.Random(seed))  # type: ignore[arg-type]


def settle(n: RawNode) -> list[Message]:
    """Play a synchronous shell: persist every Ready to storage at once; return all messages sent."""
    sent: list[Message] = []
    storage = n.raft.log.storage
    while n.has_ready():
        rd = n.ready()
        sent += rd.messages
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        n.on_persisted(rd.number)
        sent += rd.persisted_messages
        if rd.committed_entries:
            n.advance_apply(rd.committed_entries[-1].index)
    return sent


def of_type(msgs: list[Message], t: MessageType) -> list[Message]:
    return [m for m in msgs if m.type is t]


def elect(n: RawNode, ack: bool = True) -> None:
    """Make n leader of its next term with votes from 2 and 3; with ack, every follower then acknowledges the
    leader's first entry (so their progress leaves the probe state and the entry commits)."""
    n.campaign()
    settle(n)
    for voter in (2, 3):
        n.step(Message(MessageType.VOTE_RESP, to=n.id, sender=voter, term=n.raft.term))
    settle(n)
    assert n.raft.role is Role.LEADER
    if ack:
        for follower in sorted(n.raft.tracker.conf.voters - {n.id}):
            n.step(
                Message(MessageType.APP_RESP, to=n.id, sender=follower, term=n.raft.term, index=n.raft.log.last_index())
            )
        settle(n)


# -- §5.1 terms ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["follower", "candidate", "leader"])
def test_a_server_seeing_a_higher_term_adopts_it_and_becomes_follower(role):
    """Reference: Raft §5.1 "If a candidate or leader discovers that its term is out of date, it immediately
    reverts to follower state" and adopts the larger term."""
    n = node()
    if role == "candidate":
        n.campaign()
    elif role == "leader":
        elect(n)
    term = n.raft.term
    n.step(Message(MessageType.APP, to=1, sender=2, term=term + 5, index=0, log_term=0))
    assert (n.raft.role, n.raft.term, n.raft.lead) == (Role.FOLLOWER, term + 5, 2)


def test_a_request_with_a_stale_term_is_rejected():
    """Reference: Raft §5.1 "If a server receives a request with a stale term number, it rejects the request."""
    n = node(term=3, log_terms=(1,))
    n.step(Message(MessageType.APP, to=1, sender=2, term=2, index=1, log_term=1, entries=(Entry(2, 2),)))
    n.step(Message(MessageType.VOTE, to=1, sender=3, term=2, index=5, log_term=5))
    settle(n)
    assert n.raft.log.last_index() == 1
    assert (n.raft.term, n.raft.vote) == (3, 0)


# -- §5.2 leader election -------------------------------------------------------------------------------------
def test_servers_start_as_followers():
    """Reference: Raft §5.2 "When servers start up, they begin as followers."""
    n = node()
    assert (n.raft.role, n.raft.term, n.raft.lead) == (Role.FOLLOWER, 0, 0)


def test_a_leader_sends_heartbeats_every_heartbeat_interval():
    """Reference: Raft §5.2 "Leaders send periodic heartbeats ... to all followers."""
    n = node(heartbeat_tick=2)
    elect(n)
    n.tick()
    assert of_type(settle(n), MessageType.HEARTBEAT) == []
    n.tick()
    assert sorted(m.to for m in of_type(settle(n), MessageType.HEARTBEAT)) == [2, 3]


@pytest.mark.parametrize("start", ["follower", "candidate"])
def test_an_election_timeout_starts_an_election(start):
    """Reference: Raft §5.2 "To begin an election, a follower increments its current term and transitions to
    candidate state. It then votes for itself and issues RequestVote RPCs in parallel to each of the other
    servers." A candidate whose election times out starts a new one the same way."""
    n = node()
    if start == "candidate":
        n.campaign()
        settle(n)
    term = n.raft.term
    for _ in range(2 * n.raft.cfg.election_tick):
        n.tick()
        if n.raft.term != term:
            break
    msgs = settle(n)
    assert (n.raft.role, n.raft.term, n.raft.vote) == (Role.CANDIDATE, term + 1, 1)
    votes = of_type(msgs, MessageType.VOTE)
    assert sorted(m.to for m in votes) == [2, 3] and all(m.term == term + 1 for m in votes)


@pytest.mark.parametrize(
    ("size", "granted", "rejected", "role"),
    [
        (1, [], [], Role.LEADER),
        (3, [2], [], Role.LEADER),
        (3, [], [2, 3], Role.FOLLOWER),
        (3, [], [2], Role.CANDIDATE),
        (5, [2], [3], Role.CANDIDATE),
        (5, [2, 3], [], Role.LEADER),
        (5, [2], [3, 4, 5], Role.FOLLOWER),
    ],
)
def test_a_candidate_wins_with_a_majority_and_loses_without_one(size, granted, rejected, role):
    """Reference: Raft §5.2 "A candidate wins an election if it receives votes from a majority of the servers
    in the full cluster for the same term." (Its own vote counts once persisted.)"""
    n = node(voters=tuple(range(1, size + 1)))
    n.campaign()
    settle(n)
    for voter in granted + rejected:
        n.step(Message(MessageType.VOTE_RESP, to=1, sender=voter, term=1, reject=voter in rejected))
    settle(n)
    assert n.raft.role is role


def test_a_server_votes_for_at_most_one_candidate_per_term():
    """Reference: Raft §5.2 "each server will vote for at most one candidate in a given term, on a
    first-come-first-served basis"; asking again gets the same answer."""
    n = node()
    answers = []
    for candidate in (2, 3, 2):
        n.step(Message(MessageType.VOTE, to=1, sender=candidate, term=1, index=0, log_term=0))
        answers += [(m.to, m.reject) for m in of_type(settle(n), MessageType.VOTE_RESP)]
    assert answers == [(2, False), (3, True), (2, False)]
    assert n.raft.vote == 2


def test_a_candidate_hearing_from_a_leader_of_its_term_becomes_follower():
    """Reference: Raft §5.2 "If the leader's term ... is at least as large as the candidate's current term,
    then the candidate recognizes the leader as legitimate and returns to follower state."""
    n = node()
    n.campaign()
    n.step(Message(MessageType.HEARTBEAT, to=1, sender=3, term=1))
    assert (n.raft.role, n.raft.lead, n.raft.term) == (Role.FOLLOWER, 3, 1)


def test_election_timeouts_are_randomized_within_one_to_two_timeouts():
    """Reference: Raft §5.2 "election timeouts are chosen randomly from a fixed interval (e.g., 150-300ms)"."""
    timeouts = set()
    for seed in range(40):
        n = node(seed=seed, election_tick=10)
        ticks = 0
        while n.raft.role is Role.FOLLOWER:
            n.tick()
            ticks += 1
        timeouts.add(ticks)
    assert min(timeouts) >= 10 and max(timeouts) < 20
    assert len(timeouts) >= 5


# -- §5.3 log replication -------------------------------------------------------------------------------------
def test_a_leader_appends_a_proposal_and_sends_it_to_every_follower():
    """Reference: Raft §5.3 "The leader appends the command to its log as a new entry, then issues
    AppendEntries RPCs in parallel to each of the other servers to replicate the entry."""
    n = node()
    elect(n)
    n.propose(b"cmd")
    msgs = of_type(settle(n), MessageType.APP)
    assert n.raft.log.last_index() == 2
    assert sorted(m.to for m in msgs) == [2, 3]
    assert all(m.entries == (Entry(1, 2, data=b"cmd"),) and (m.index, m.log_term) == (1, 1) for m in msgs)


def test_an_entry_commits_once_a_majority_holds_it_and_followers_learn_the_commit_index():
    """Reference: Raft §5.3 "A log entry is committed once the leader that created the entry has replicated
    it on a majority of the servers"; "The leader keeps track of the highest index it knows to be committed,
    and it includes that index in future AppendEntries RPCs"."""
    n = node(voters=(1, 2, 3, 4, 5))
    elect(n)
    n.propose(b"x")
    settle(n)
    n.step(Message(MessageType.APP_RESP, to=1, sender=2, term=1, index=2))
    assert n.raft.log.committed == 1  # the leader and 2: two of five
    n.step(Message(MessageType.APP_RESP, to=1, sender=3, term=1, index=2))
    assert n.raft.log.committed == 2
    assert {m.commit for m in of_type(settle(n), MessageType.APP)} == {2}


@pytest.mark.parametrize(
    ("log_term", "index", "reject", "resp_index", "hint"),
    [
        (0, 0, False, 1, 0),  # before the commit index: answered with the commit index
        (1, 1, False, 1, 0),
        (2, 2, False, 2, 0),
        (1, 2, True, 2, 1),  # term mismatch at 2: hint at 1, the last entry of term <= 1
        (3, 3, True, 3, 2),  # beyond our log: hint at our last entry
    ],
)
def test_a_follower_refuses_an_append_whose_previous_entry_it_lacks(log_term, index, reject, resp_index, hint):
    """Reference: Raft §5.3 "If the follower does not find an entry in its log with the same index and term,
    then it refuses the new entries." (The hint is the thesis §5.3 / etcd optimisation of backing up.)"""
    n = node(member=2, log_terms=(1, 2), term=2, commit=1)
    n.step(Message(MessageType.APP, to=2, sender=1, term=2, index=index, log_term=log_term, commit=1))
    (resp,) = of_type(settle(n), MessageType.APP_RESP)
    assert (resp.reject, resp.index) == (reject, resp_index)
    if reject:
        assert resp.reject_hint == hint


@pytest.mark.parametrize(
    ("index", "log_term", "entries", "want"),
    [
        (2, 2, [(3, 3)], [1, 2, 3]),
        (1, 1, [(3, 2), (4, 3)], [1, 3, 4]),
        (0, 0, [(1, 1)], [1, 2]),
        (0, 0, [(3, 1)], [3]),
    ],
)
def test_a_follower_deletes_conflicting_entries_and_appends_new_ones(index, log_term, entries, want):
    """Reference: Raft §5.3 "If an existing entry conflicts with a new one (same index but different terms),
    delete the existing entry and all that follow it" (figure 2, AppendEntries receiver step 3)."""
    n = node(member=2, log_terms=(1, 2), term=2)
    ents = tuple(Entry(t, i) for t, i in entries)
    n.step(Message(MessageType.APP, to=2, sender=1, term=4, index=index, log_term=log_term, entries=ents))
    settle(n)
    assert [e.term for e in n.raft.log.all_entries()] == want


FIGURE_7_LEADER = (1, 1, 1, 4, 4, 5, 5, 6, 6, 6)


@pytest.mark.parametrize(
    "follower",
    [
        (1, 1, 1, 4, 4, 5, 5, 6, 6),  # (a) missing entries
        (1, 1, 1, 4),  # (b)
        (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6),  # (c) an extra uncommitted entry
        (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7),  # (d) extra entries of a later term
        (1, 1, 1, 4, 4, 4, 4),  # (e) missing and extra
        (1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3),  # (f) a leader of terms 2 and 3 that failed
    ],
    ids=list("abcdef"),
)
def test_a_leader_brings_every_follower_log_of_figure_7_in_line_with_its_own(follower):
    """Reference: Raft §5.3, figure 7: "the leader handles inconsistencies by forcing the followers' logs to
    duplicate its own"."""
    cluster = Cluster([1, 2, 3], pre_vote=False, check_quorum=False)
    for member, terms, hs_term in ((1, FIGURE_7_LEADER, 7), (2, follower, 7), (3, (), 7)):
        storage = cluster.members[member].storage
        storage.append([Entry(t, i + 1) for i, t in enumerate(terms)])
        storage.set_hard_state(HardState(hs_term, 0, 0))
        cluster.restart(member)
    cluster.elect(1)
    assert cluster.members[1].node.raft.term == 8
    assert [e.term for e in cluster.log_of(2)] == [*FIGURE_7_LEADER, 8]
    assert cluster.members[2].node.raft.log.committed == 11


# -- §5.4 safety ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("log_terms", "cand_term", "cand_index", "granted"),
    [
        ((1, 1), 1, 1, False),  # same last term, shorter
        ((1, 1), 1, 2, True),
        ((1, 1), 1, 3, True),
        ((1, 1), 2, 1, True),  # later last term wins even if shorter
        ((1, 2), 1, 3, False),  # earlier last term loses even if longer
        ((1, 2), 2, 1, False),
        ((1, 2), 2, 2, True),
        ((1, 2), 3, 1, True),
    ],
)
def test_a_voter_denies_a_candidate_whose_log_is_less_up_to_date(log_terms, cand_term, cand_index, granted):
    """Reference: Raft §5.4.1 "the voter denies its vote if its own log is more up-to-date than that of the
    candidate ... If the logs have last entries with different terms, then the log with the later term is
    more up-to-date. If the logs end with the same term, then whichever log is longer is more up-to-date."""
    n = node(log_terms=log_terms, term=2)
    n.step(Message(MessageType.VOTE, to=1, sender=2, term=3, index=cand_index, log_term=cand_term))
    (resp,) = of_type(settle(n), MessageType.VOTE_RESP)
    assert resp.reject is not granted


def test_a_leader_commits_an_earlier_terms_entry_only_through_an_entry_of_its_own_term():
    """Reference: Raft §5.4.2 "Raft never commits log entries from previous terms by counting replicas. Only
    log entries from the leader's current term are committed by counting replicas" (the figure 8 hazard)."""
    n = node(log_terms=(1, 2), term=2)
    elect(n, ack=False)  # term 3, appends its empty entry at 3
    n.step(Message(MessageType.APP_RESP, to=1, sender=2, term=3, index=2))
    settle(n)
    assert n.raft.log.committed == 0  # index 2 (term 2) is on a majority, but is not of term 3
    n.step(Message(MessageType.APP_RESP, to=1, sender=2, term=3, index=3))
    settle(n)
    assert n.raft.log.committed == 3  # committing 3/3 commits 2/2 with it


def test_a_new_leader_holds_every_committed_entry_because_voters_refuse_shorter_logs():
    """Reference: Raft §5.4 (Leader Completeness): a candidate missing a committed entry cannot collect a
    majority, since every majority includes a member holding the entry."""
    cluster = Cluster([1, 2, 3], pre_vote=False, check_quorum=False)
    cluster.elect(1)
    cluster.isolate(3)
    cluster.members[1].node.propose(b"committed")
    cluster.stabilize()
    assert cluster.members[1].node.raft.log.committed == 2
    cluster.heal()
    cluster.elect(3)
    assert cluster.members[3].node.raft.role is not Role.LEADER
    cluster.elect(2)
    assert cluster.members[2].node.raft.role is Role.LEADER
    assert any(e.data == b"committed" for e in cluster.log_of(2))


# -- thesis §3.8, §10.2.1: persistence ------------------------------------------------------------------------
def test_responses_that_assert_durable_state_wait_for_the_ready_to_be_persisted():
    """Reference: Raft thesis §3.8 "each server persists new log entries before they are counted towards the
    entries' commitment"; a vote is durable before it is reported (§3.6, figure 3.1 "Persistent state")."""
    n = node(member=2)
    n.step(Message(MessageType.VOTE, to=2, sender=1, term=1, index=0, log_term=0))
    n.step(Message(MessageType.APP, to=2, sender=1, term=1, index=0, log_term=0, entries=(Entry(1, 1),)))
    rd = n.ready()
    assert rd.must_sync and rd.entries and rd.hard_state is not None
    assert not [m for m in rd.messages if m.type in RESPONSES_AFTER_PERSIST]
    assert {m.type for m in rd.persisted_messages} == {MessageType.VOTE_RESP, MessageType.APP_RESP}


def test_a_one_voter_cluster_commits_nothing_before_its_own_fsync():
    """Reference: Raft thesis §3.8 and etcd-io/etcd#14370: with one voter, the leader's own durable copy is
    the majority, so nothing commits until the Ready holding the entry is persisted."""
    n = node(voters=(1,))
    n.campaign()
    settle(n)
    assert n.raft.role is Role.LEADER and n.raft.log.committed == 1
    n.propose(b"w")
    rd = n.ready()
    for _ in range(5):
        n.tick()
    assert n.raft.log.committed == 1
    assert not n.ready().committed_entries
    n.raft.log.storage.append(rd.entries)
    n.on_persisted(rd.number)
    assert n.raft.log.committed == 2


def test_a_leader_sends_appends_before_its_own_write_is_durable():
    """Reference: Raft thesis §10.2.1 "the leader can write to its disk in parallel with replicating to the
    followers"."""
    n = node()
    elect(n)
    n.propose(b"p")
    rd = n.ready()
    assert rd.entries and of_type(rd.messages, MessageType.APP)


# -- thesis §3.10, §6.4, §9.6: transfer, reads, pre-vote -------------------------------------------------------
def test_proposals_are_refused_during_a_leader_transfer():
    """Reference: Raft thesis §3.10 "the prior leader stops accepting new client requests" during a transfer."""
    n = node()
    elect(n)
    n.transfer_leader(2)
    with pytest.raises(ProposalDroppedError):
        n.propose(b"x")


def test_a_new_leader_defers_read_index_until_it_commits_an_entry_of_its_term():
    """Reference: Raft thesis §6.4 step 1: "If the leader has not yet marked an entry from its current term
    committed, it waits until it has done so."""
    n = node(log_terms=(1,), term=1)
    elect(n, ack=False)
    n.read_index(b"r")
    assert not of_type(settle(n), MessageType.HEARTBEAT)
    n.step(Message(MessageType.APP_RESP, to=1, sender=2, term=2, index=2))
    msgs = settle(n)
    assert [m.context for m in of_type(msgs, MessageType.HEARTBEAT)] == [b"r", b"r"]


def test_a_pre_vote_does_not_change_the_voters_term():
    """Reference: Raft thesis §9.6: a pre-candidate "would only increment its term if it first learns from a
    majority of the cluster that they would be willing to grant" their votes; voters keep their term."""
    n = node(member=2, log_terms=(1,), term=1, pre_vote=True)
    n.step(Message(MessageType.PRE_VOTE, to=2, sender=1, term=2, index=1, log_term=1))
    (resp,) = of_type(settle(n), MessageType.PRE_VOTE_RESP)
    assert not resp.reject and resp.term == 2
    assert (n.raft.term, n.raft.vote) == (1, 0)


# -- beyond the paper ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("reported_term", "want_commit"), [(1, 3), (2, 1)])
def test_a_candidate_learns_the_commit_index_from_a_refusal_when_its_log_holds_that_entry(reported_term, want_commit):
    """A refused vote carries the voter's commit index. A candidate whose log holds the same entry there adopts
    it (log matching makes its prefix the committed one), so it can apply a configuration change it had
    lost track of in a crash; with a different term there, it learns nothing."""
    n = node(log_terms=(1, 1, 1), term=1, commit=1)
    n.campaign()
    settle(n)
    n.step(Message(MessageType.VOTE_RESP, to=1, sender=2, term=2, reject=True, commit=3, log_term=reported_term))
    assert n.raft.log.committed == want_commit


def test_a_learner_votes_when_a_candidate_asks_it():
    """A learner promoted in the candidate's configuration but not yet in its own must still vote, or the
    cluster can be left without a quorum of voters willing to vote (etcd-io/raft campaign_learner_must_vote)."""
    n = node(member=3, voters=(1, 2))
    n.raft.tracker.set_conf(ConfState(frozenset({1, 2}), frozenset({3})), 1)
    n.step(Message(MessageType.VOTE, to=3, sender=2, term=1, index=0, log_term=0))
    (resp,) = of_type(settle(n), MessageType.VOTE_RESP)
    assert not resp.reject and n.raft.vote == 2


def test_a_member_just_added_does_not_depose_the_leader_at_the_next_quorum_check():
    """A lone leader adds a second voter that has not started yet. The next check-quorum must count the new
    member as heard from (etcd-io/raft's initProgress), or the leader steps down at once, before the new member
    could answer: etcd keeps its leader for one more election timeout. The check after that, still without a
    word from the new member, deposes it."""
    n = node(voters=(1,), check_quorum=True)
    n.campaign()
    settle(n)
    assert n.raft.role is Role.LEADER
    n.apply_conf_change(ConfChange(ConfChangeType.ADD_NODE, 2))
    settle(n)
    election_timeout = n.raft.cfg.election_tick
    for _ in range(election_timeout):  # ends with the first quorum check after the change
        n.tick()
    settle(n)
    assert n.raft.role is Role.LEADER
    for _ in range(election_timeout):
        n.tick()
    settle(n)
    assert n.raft.role is Role.FOLLOWER

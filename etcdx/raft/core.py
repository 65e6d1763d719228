"""The Raft state machine: one member's term, vote, role and log, changed only by messages and ticks.

Role dispatch is by swapping two functions, as etcd-io/raft does: `_step` is step_follower,
step_candidate (pre-candidates too) or step_leader, and `_tick` is tick_election or tick_heartbeat.
Raft.step holds the rules common to every role (term comparison and voting, Raft §5.1, §5.2, §5.4.1,
thesis §9.6 for pre-vote and §6.2 for check-quorum's leader lease); the role functions hold the rest.

Outputs accumulate in `msgs` (may be sent at once), `msgs_after_append` (responses that assert durable
state: sent, or stepped if addressed to this member, only once the Ready holding them is persisted) and
`read_states`. RawNode packages them into Readies. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from etcdx.raft import confchange
from etcdx.raft.config import Config, Jitter
from etcdx.raft.errors import (
    CompactedError,
    InvariantViolation,
    ProposalDroppedError,
    SnapshotTemporarilyUnavailableError,
    UnavailableError,
)
from etcdx.raft.log import RaftLog
from etcdx.raft.messages import (
    CAMPAIGN_TRANSFER,
    NONE,
    RESPONSES_AFTER_PERSIST,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    Snapshot,
    SoftState,
    plain_members,
)
from etcdx.raft.progress import Progress, ProgressState
from etcdx.raft.quorum import VoteResult
from etcdx.raft.read_only import ReadOnly
from etcdx.raft.storage import Storage
from etcdx.raft.tracker import ProgressTracker

T = plain_members(MessageType)
_ROLE = plain_members(Role)
_PROGRESS_STATE = plain_members(ProgressState)
_ENTRY_TYPE = plain_members(EntryType)
_VOTE_TYPES = (T.VOTE, T.PRE_VOTE)
REMOVE = ConfChangeType.REMOVE_NODE
_TERMLESS = (T.PROP, T.READ_INDEX, T.TRANSFER_LEADER)


class Raft:
    def __init__(self, cfg: Config, storage: Storage, rng: Jitter) -> None:
        self.id = cfg.id
        self.cfg = cfg
        self.rng = rng
        self.log = RaftLog(storage, cfg.max_committed_size_per_ready)
        hs, conf = storage.initial_state()
        self.tracker = ProgressTracker(cfg.max_inflight_msgs, cfg.max_inflight_bytes)
        self.tracker.set_conf(conf, self.log.last_index() + 1)
        self.term = 0
        """Invariant: never decreases."""
        self.vote = NONE
        """Whom this member voted for in `term`. Invariant: set at most once per term."""
        self.term_start_index = 0
        """As leader: the index of its term's first entry; an entry of the term is committed once the commit
        index reaches it (committed_entry_in_current_term without a log lookup)."""
        self.lead = NONE
        self.role = _ROLE.FOLLOWER
        self.read_only = ReadOnly()
        self.msgs: list[Message] = []
        self.msgs_after_append: list[Message] = []
        self.read_states: list[ReadState] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = cfg.election_tick
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        """Leader only: the index of the last conf change proposed. Invariant: no second conf change is
        proposed while pending_conf_index > log.applied."""
        self.removing_self = False
        """Leader only: a conf change removing this member is in the log, not yet applied. Invariant: while
        set, no proposal is appended after it, so the remaining voters' logs can be as up-to-date as ours and
        this member (outside the new configuration, unable to campaign) can still vote one of them in."""
        self.pending_read_index_messages: list[Message] = []
        """Leader only: ReadIndex requests waiting for the first commit in this term (Raft thesis §6.4)."""
        self._step: Callable[[Raft, Message], None] = step_follower
        self._tick: Callable[[Raft], None] = tick_election
        if max(hs.commit, cfg.applied) > self.log.last_index():
            raise InvariantViolation(f"commit {hs.commit} or applied {cfg.applied} beyond the log's last index")
        # What the state machine applied was committed, even if the hard state saying so was lost in a crash
        # (a Ready that only moves the commit index is written without fsync). Without this, a member that
        # applied its own configuration change could come back under the old one and wait forever for a vote.
        self.log.committed = max(self.log.committed, hs.commit, cfg.applied)
        self.term, self.vote = hs.term, hs.vote
        if cfg.applied:
            self.log.applied_to(cfg.applied)
        self.become_follower(self.term, NONE)

    # -- state records -------------------------------------------------------------------------------------
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def promotable(self) -> bool:
        """Whether this member may campaign: it is a voter (learners and removed members never are)."""
        return self.tracker.is_voter(self.id)

    # -- role changes --------------------------------------------------------------------------------------
    def reset(self, term: int) -> None:
        if term != self.term:
            if term < self.term:
                raise InvariantViolation(f"term going back from {self.term} to {term}")
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_tick + self.rng.randrange(self.cfg.election_tick)
        self.lead_transferee = NONE
        self.tracker.votes = {}
        last = self.log.last_index()
        for member, pr in list(self.tracker.progress.items()):
            fresh = self.tracker.new_progress(last + 1, pr.learner)
            if member == self.id:
                fresh.match = self.log.persisted
            self.tracker.progress[member] = fresh
        self.pending_conf_index = 0
        self.removing_self = False
        self.read_only.reset()
        self.pending_read_index_messages = []

    def become_follower(self, term: int, lead: int) -> None:
        self._step = step_follower
        self.reset(term)
        self._tick = tick_election
        self.lead = lead
        self.role = _ROLE.FOLLOWER

    def become_pre_candidate(self) -> None:
        if self.role is _ROLE.LEADER:
            raise InvariantViolation("leader -> pre-candidate")
        self._step = step_candidate
        self.tracker.votes = {}
        self._tick = tick_election
        self.lead = NONE
        self.role = _ROLE.PRE_CANDIDATE

    def become_candidate(self) -> None:
        if self.role is _ROLE.LEADER:
            raise InvariantViolation("leader -> candidate")
        self._step = step_candidate
        self.reset(self.term + 1)
        self._tick = tick_election
        self.vote = self.id
        self.role = _ROLE.CANDIDATE

    def become_leader(self) -> None:
        if self.role is _ROLE.FOLLOWER:
            raise InvariantViolation("follower -> leader")
        self._step = step_leader
        self.reset(self.term)
        self._tick = tick_heartbeat
        self.lead = self.id
        self.role = _ROLE.LEADER
        me = self.tracker.progress.get(self.id)
        if me is not None:
            me.become_replicate()
            me.recent_active = True
        # Conf changes in the log but not applied may be pending; treat everything up to here as such.
        self.pending_conf_index = self.log.last_index()
        self.removing_self = any(
            e.type is _ENTRY_TYPE.CONF_CHANGE and ConfChange.decode(e.data) == ConfChange(REMOVE, self.id)
            for e in self.log.slice(max(self.log.applied + 1, self.log.first_index()), self.log.last_index() + 1)
        )
        # An empty entry of the new term: committing it commits everything before it (Raft §5.4.2, §8).
        self.append_entries([Entry(term=0, index=0)])
        self.term_start_index = self.log.last_index()

    # -- sending -------------------------------------------------------------------------------------------
    def send(self, m: Message) -> None:
        if m.sender == NONE:
            m.sender = self.id
        if m.type in _VOTE_TYPES or m.type in (T.VOTE_RESP, T.PRE_VOTE_RESP):
            if m.term == 0:
                raise InvariantViolation(f"{m.type.value} without a term")
        elif m.type not in _TERMLESS:
            m.term = self.term
        if m.type in RESPONSES_AFTER_PERSIST:
            self.msgs_after_append.append(m)
        else:
            if m.to == self.id:
                raise InvariantViolation(f"{m.type.value} addressed to self")
            self.msgs.append(m)

    def maybe_send_append(self, to: int, send_if_empty: bool = True) -> bool:
        """Send `to` the entries after its `next`, or a snapshot if they are compacted. False if nothing went."""
        pr = self.tracker.progress[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        try:
            log_term = self.log.term(prev)
            entries = self.log.entries_from(pr.next, self.cfg.max_size_per_msg)
        except CompactedError:
            return self.maybe_send_snapshot(to)
        except UnavailableError as exc:
            raise InvariantViolation(f"progress of {to} (next {pr.next}) beyond the log") from exc
        if not entries and not send_if_empty:
            return False
        pr.sent_entries(entries[-1].index if entries else None, sum(e.size() for e in entries))
        self.send(
            Message(T.APP, to=to, index=prev, log_term=log_term, entries=tuple(entries), commit=self.log.committed)
        )
        return True

    def maybe_send_snapshot(self, to: int) -> bool:
        pr = self.tracker.progress[to]
        if not pr.recent_active:
            return False
        try:
            snap = self.log.unstable.snapshot or self.log.storage.snapshot()
        except SnapshotTemporarilyUnavailableError:
            return False
        if snap.is_empty():
            raise InvariantViolation("entries are compacted but the storage has no snapshot")
        pr.become_snapshot(snap.index)
        self.send(Message(T.SNAP, to=to, snapshot=snap))
        return True

    def bcast_append(self) -> None:
        for member in sorted(self.tracker.progress):
            if member != self.id:
                self.maybe_send_append(member)

    def bcast_heartbeat(self) -> None:
        ctx = self.read_only.last_pending_context()
        for member in sorted(self.tracker.progress):
            if member != self.id:
                self.send_heartbeat(member, ctx)

    def send_heartbeat(self, to: int, ctx: bytes) -> None:
        # A follower may not yet hold entries up to our commit index: send no more than its match.
        commit = min(self.tracker.progress[to].match, self.log.committed)
        self.send(Message(T.HEARTBEAT, to=to, commit=commit, context=ctx))

    # -- log -----------------------------------------------------------------------------------------------
    def append_entries(self, entries: list[Entry]) -> None:
        """Leader: stamp entries with this term and the next indexes, append, and self-acknowledge them once
        durable (the self MsgAppResp is released by on_persisted; the leader counts itself only then)."""
        last = self.log.last_index()
        stamped = [Entry(self.term, last + 1 + k, e.type, e.data) for k, e in enumerate(entries)]
        last = self.log.append(stamped)
        self.send(Message(T.APP_RESP, to=self.id, index=last))

    def append_proposals(self, datas: list[bytes]) -> None:
        """Leader: append_entries for normal entries holding ``datas`` (no intermediate entries built)."""
        term, first, normal, new = self.term, self.log.last_index() + 1, _ENTRY_TYPE.NORMAL, tuple.__new__
        # tuple.__new__ builds the same Entry as Entry(...) without the NamedTuple's Python-level __new__.
        last = self.log.append([new(Entry, (term, first + k, normal, data)) for k, data in enumerate(datas)])
        self.send(Message(T.APP_RESP, to=self.id, index=last))

    def can_take_proposals(self) -> bool:
        """Whether a leader takes normal proposals now: leader_propose's checks for entries without conf changes."""
        return (
            self.role is _ROLE.LEADER
            and self.lead_transferee == NONE
            and not self.removing_self
            and self.id in self.tracker.progress
        )

    def maybe_commit(self) -> bool:
        return self.log.maybe_commit(self.tracker.committed(), self.term)

    def committed_entry_in_current_term(self) -> bool:
        return self.log.term_or_zero(self.log.committed) == self.term

    def has_unapplied_conf_changes(self) -> bool:
        lo = max(self.log.applied + 1, self.log.first_index())  # below first_index: in a snapshot being applied
        if lo > self.log.committed:
            return False
        return any(e.type is _ENTRY_TYPE.CONF_CHANGE for e in self.log.slice(lo, self.log.committed + 1))

    # -- entry points --------------------------------------------------------------------------------------
    def tick(self) -> None:
        self._tick(self)

    def step_own_ack(self, m: Message) -> None:
        """This member's own acknowledgement of entries it persisted: what ``step`` does with it, by the
        short way when it is a leader's of its current term (every write on a leader comes here)."""
        if m.type is T.APP_RESP and m.term == self.term and self.role is _ROLE.LEADER and not m.reject:
            pr = self.tracker.progress.get(m.sender)
            if pr is not None:
                leader_handle_append_response(self, m, pr)
            return
        self.step(m)

    def step(self, m: Message) -> None:
        """Process one message. Raises ProposalDroppedError for a proposal this member cannot take."""
        if m.term == 0:
            pass  # local message, or a proposal / read / transfer forwarded by a follower
        elif m.term > self.term:
            if m.type in _VOTE_TYPES:
                forced = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.cfg.check_quorum and self.lead != NONE and self.election_elapsed < self.cfg.election_tick
                )
                if not forced and in_lease:
                    # A leader is alive as far as we know: a disruptive candidate gets no vote and does not
                    # raise our term (Raft thesis §4.2.3, leader stickiness).
                    return
            if m.type is T.PRE_VOTE:
                pass  # a pre-vote never changes our term
            elif m.type is T.PRE_VOTE_RESP and not m.reject:
                pass  # granted pre-votes come with the term we will campaign at
            elif m.type in (T.APP, T.HEARTBEAT, T.SNAP):
                self.become_follower(m.term, m.sender)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (T.HEARTBEAT, T.APP):
                # A stale leader, perhaps cut off; tell it our term so it steps down (it cannot otherwise learn
                # it when check-quorum or pre-vote keeps us from raising its term through votes).
                self.send(Message(T.APP_RESP, to=m.sender))
            elif m.type is T.PRE_VOTE:
                self.send(Message(T.PRE_VOTE_RESP, to=m.sender, term=self.term, reject=True))
            return

        if m.reject and m.commit and m.type in (T.VOTE_RESP, T.PRE_VOTE_RESP):
            self.learn_commit(m.commit, m.log_term)
        if m.type is T.HUP:
            self.hup(transfer=m.context == CAMPAIGN_TRANSFER)
        elif m.type in _VOTE_TYPES:
            self.handle_vote_request(m)
        else:
            self._step(self, m)

    def hup(self, transfer: bool = False) -> None:
        if self.role is _ROLE.LEADER or not self.promotable():
            return
        if self.has_unapplied_conf_changes():
            return  # campaigning now could be under a configuration that is about to change
        if transfer:
            self.campaign(pre=False, transfer=True)
        else:
            self.campaign(pre=self.cfg.pre_vote)

    def campaign(self, pre: bool, transfer: bool = False) -> None:
        if pre:
            self.become_pre_candidate()
            request, response, term = T.PRE_VOTE, T.PRE_VOTE_RESP, self.term + 1
        else:
            self.become_candidate()
            request, response, term = T.VOTE, T.VOTE_RESP, self.term
        last = self.log.last_index()
        last_term = self.log.last_term()
        for voter in sorted(self.tracker.conf.voters):
            if voter == self.id:
                # Our own vote counts once our term and vote are durable (released by on_persisted).
                self.send(Message(response, to=self.id, term=term))
            else:
                ctx = CAMPAIGN_TRANSFER if transfer else b""
                self.send(Message(request, to=voter, term=term, index=last, log_term=last_term, context=ctx))

    def handle_vote_request(self, m: Message) -> None:
        """Grant at most one vote per term, to a candidate whose log is at least as up-to-date (Raft §5.2,
        §5.4.1). A pre-vote is granted on the same log rule to any candidate for a later term (thesis §9.6)."""
        response = T.VOTE_RESP if m.type is T.VOTE else T.PRE_VOTE_RESP
        can_vote = (
            self.vote == m.sender
            or (self.vote == NONE and self.lead == NONE)
            or (m.type is T.PRE_VOTE and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self.send(Message(response, to=m.sender, term=m.term))
            if m.type is T.VOTE:
                self.election_elapsed = 0
                self.vote = m.sender
        else:
            # The refusal carries our commit index: a candidate that lost its own (a crash before the hard state
            # saying so was synced) may learn it here, apply a pending conf change and become electable.
            committed = self.log.committed
            self.send(
                Message(
                    response,
                    to=m.sender,
                    term=self.term,
                    reject=True,
                    commit=committed,
                    log_term=self.log.term_or_zero(committed),
                )
            )

    def learn_commit(self, index: int, term: int) -> None:
        """Another member reports (index, term) committed. If our log holds that entry, everything up to it
        is the committed prefix (Raft §5.3 log matching, §5.4.3), whoever reported it."""
        if index > self.log.committed and self.log.match_term(index, term):
            self.log.commit_to(index)

    # -- follower handlers (also used by candidates on discovering a leader) --------------------------------
    def handle_append_entries(self, m: Message) -> None:
        if m.index < self.log.committed:
            self.send(Message(T.APP_RESP, to=m.sender, index=self.log.committed))
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self.send(Message(T.APP_RESP, to=m.sender, index=last_new))
            return
        # Raft §5.3: refuse, and hint where our log may match so the leader skips a term at a time.
        hint_index, hint_term = self.log.find_conflict_by_term(min(m.index, self.log.last_index()), m.log_term)
        self.send(
            Message(T.APP_RESP, to=m.sender, index=m.index, reject=True, reject_hint=hint_index, log_term=hint_term)
        )

    def handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(m.commit)
        self.send(Message(T.HEARTBEAT_RESP, to=m.sender, context=m.context))

    def handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        if snap is None:
            raise InvariantViolation("MsgSnap without a snapshot")
        if self.restore(snap):
            self.send(Message(T.APP_RESP, to=m.sender, index=self.log.last_index()))
        else:
            self.send(Message(T.APP_RESP, to=m.sender, index=self.log.committed))

    def restore(self, snap: Snapshot) -> bool:
        """Install a leader's snapshot (Raft §7) unless our log already covers it. True if installed."""
        if snap.index <= self.log.committed:
            return False
        if self.role is not _ROLE.FOLLOWER:
            raise InvariantViolation(f"restoring a snapshot as {self.role.value}")
        conf = snap.conf_state
        if self.id not in conf.voters and self.id not in conf.learners:
            return False  # a snapshot of a configuration we are not in: ignore it
        if self.log.match_term(snap.index, snap.term):
            self.log.commit_to(snap.index)  # we hold the entry: just fast-forward the commit index
            return False
        self.log.restore(snap)
        self.tracker.progress = {}
        self.tracker.set_conf(conf, self.log.last_index() + 1)
        return True

    # -- reads ---------------------------------------------------------------------------------------------
    def respond_to_read_index(self, request: Message, index: int) -> None:
        if request.sender in (NONE, self.id):
            self.read_states.append(ReadState(index, request.context))
        else:
            self.send(Message(T.READ_INDEX_RESP, to=request.sender, index=index, context=request.context))

    def release_pending_read_index_messages(self) -> None:
        if not self.pending_read_index_messages or not self.committed_entry_in_current_term():
            return
        pending, self.pending_read_index_messages = self.pending_read_index_messages, []
        for m in pending:
            self.leader_read_index(m)

    def leader_read_index(self, m: Message) -> None:
        if self.tracker.conf.voters == {self.id}:
            # One voter: everything acknowledged is committed here, and no one else can lead.
            self.respond_to_read_index(m, self.log.committed)
            return
        self.read_only.add_request(self.log.committed, m)
        self.read_only.recv_ack(self.id, m.context)
        self.bcast_heartbeat()

    # -- membership ----------------------------------------------------------------------------------------
    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        conf = confchange.apply(self.tracker.conf, cc)
        known = set(self.tracker.progress)
        self.tracker.set_conf(conf, self.log.last_index() + 1)
        for member in self.tracker.progress.keys() - known:
            # A member just added counts as heard from (etcd-io/raft's initProgress): the next check-quorum must
            # not depose the leader before the new member had a chance to answer (up to one election timeout).
            self.tracker.progress[member].recent_active = True
        if self.role is not _ROLE.LEADER:
            return conf
        if self.id not in conf.voters:
            # A removed or demoted leader steps down (etcd-io/raft's StepDownOnRemoval), after telling the
            # others the commit index that makes the change take effect for them too.
            self.maybe_commit()
            self.bcast_append()
            self.become_follower(self.term, NONE)
            return conf
        if self.lead_transferee != NONE and self.lead_transferee not in conf.voters:
            self.lead_transferee = NONE
        if self.maybe_commit():
            self.bcast_append()
        else:
            for member in sorted(self.tracker.progress):
                if member != self.id:
                    self.maybe_send_append(member, send_if_empty=False)
        return conf


# -- ticks ---------------------------------------------------------------------------------------------------
def tick_election(r: Raft) -> None:
    """Follower and candidate: campaign once the randomized election timeout passes without a leader's word."""
    r.election_elapsed += 1
    if r.promotable() and r.election_elapsed >= r.randomized_election_timeout:
        r.election_elapsed = 0
        r.step(Message(T.HUP, sender=r.id))


def tick_heartbeat(r: Raft) -> None:
    """Leader: heartbeat every heartbeat_tick; every election_tick, check it still hears from a quorum."""
    r.heartbeat_elapsed += 1
    r.election_elapsed += 1
    if r.election_elapsed >= r.cfg.election_tick:
        r.election_elapsed = 0
        if r.cfg.check_quorum:
            r.step(Message(T.CHECK_QUORUM, sender=r.id))
        if r.role is _ROLE.LEADER and r.lead_transferee != NONE:
            r.lead_transferee = NONE  # the transfer did not finish within an election timeout
    if r.role is not _ROLE.LEADER:
        return
    if r.heartbeat_elapsed >= r.cfg.heartbeat_tick:
        r.heartbeat_elapsed = 0
        r.step(Message(T.BEAT, sender=r.id))


# -- steps -----------------------------------------------------------------------------------------------------
def step_leader(r: Raft, m: Message) -> None:
    t = m.type
    if t is T.BEAT:
        r.bcast_heartbeat()
        return
    if t is T.CHECK_QUORUM:
        if not r.tracker.quorum_active(r.id):
            r.become_follower(r.term, NONE)  # Raft thesis §6.2: a leader that cannot reach a quorum steps down
            return
        for member, pr in r.tracker.progress.items():
            if member != r.id:
                pr.recent_active = False
        return
    if t is T.PROP:
        leader_propose(r, m)
        return
    if t is T.READ_INDEX:
        if not r.committed_entry_in_current_term():
            # Until an entry of its term commits, a new leader does not know the commit index (§6.4).
            r.pending_read_index_messages.append(m)
            return
        r.leader_read_index(m)
        return
    if t is T.TRANSFER_LEADER:
        leader_transfer(r, m)
        return

    pr = r.tracker.progress.get(m.sender)
    if pr is None:
        return  # a member no longer in the configuration
    if t is T.APP_RESP:
        leader_handle_append_response(r, m, pr)
    elif t is T.HEARTBEAT_RESP:
        pr.recent_active = True
        pr.paused = False
        if pr.match < r.log.last_index() or pr.state is _PROGRESS_STATE.PROBE:
            r.maybe_send_append(m.sender)
        if not m.context:
            return
        acks = r.read_only.recv_ack(m.sender, m.context)
        if acks is None or not _is_quorum(r, acks):
            return
        for status in r.read_only.advance(m.context):
            r.respond_to_read_index(status.request, status.index)
    elif t is T.SNAP_STATUS:
        if pr.state is not _PROGRESS_STATE.SNAPSHOT:
            return
        if m.reject:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.paused = True  # wait for a heartbeat response before probing again
    elif t is T.UNREACHABLE and pr.state is _PROGRESS_STATE.REPLICATE:
        pr.become_probe()


def _is_quorum(r: Raft, acks: set[int]) -> bool:
    voters = r.tracker.conf.voters
    return len(acks & voters) >= len(voters) // 2 + 1


def leader_propose(r: Raft, m: Message) -> None:
    if not m.entries:
        raise InvariantViolation("MsgProp without entries")
    if r.id not in r.tracker.progress:
        raise ProposalDroppedError("this member is not in the configuration")
    if r.lead_transferee != NONE:
        raise ProposalDroppedError("a leader transfer is in progress")
    if r.removing_self:
        raise ProposalDroppedError("this leader is being removed")
    for k, e in enumerate(m.entries):
        if e.type is not _ENTRY_TYPE.CONF_CHANGE:
            continue
        if r.pending_conf_index > r.log.applied:
            raise ProposalDroppedError("a conf change is already pending")
        cc = ConfChange.decode(e.data)
        reason = confchange.refusal(cc, r.tracker, r.id, r.log.last_index())
        if reason is not None:
            raise ProposalDroppedError(reason)
        r.pending_conf_index = r.log.last_index() + k + 1
        r.removing_self = cc == ConfChange(REMOVE, r.id)
    r.append_entries(list(m.entries))
    r.bcast_append()


def leader_transfer(r: Raft, m: Message) -> None:
    """Raft thesis §3.10: bring the transferee's log up to date, then tell it to campaign at once."""
    transferee = m.sender
    pr = r.tracker.progress.get(transferee)
    if pr is None or pr.learner:
        return
    if r.lead_transferee == transferee or transferee == r.id:
        return
    r.lead_transferee = transferee
    r.election_elapsed = 0  # the transfer must finish within one election timeout
    if pr.match == r.log.last_index():
        r.send(Message(T.TIMEOUT_NOW, to=transferee))
    else:
        r.maybe_send_append(transferee)


def leader_handle_append_response(r: Raft, m: Message, pr: Progress) -> None:
    pr.recent_active = True
    if m.reject:
        next_probe = m.reject_hint
        if m.log_term > 0:
            next_probe, _ = r.log.find_conflict_by_term(m.reject_hint, m.log_term)
        if pr.maybe_decrease_to(m.index, next_probe):
            if pr.state is _PROGRESS_STATE.REPLICATE:
                pr.become_probe()
            r.maybe_send_append(m.sender)
        return
    was_paused = pr.is_paused()
    if not (pr.maybe_update(m.index) or (pr.match == m.index and pr.state is _PROGRESS_STATE.PROBE)):
        return
    if pr.state is _PROGRESS_STATE.PROBE:
        pr.become_replicate()
    elif pr.state is _PROGRESS_STATE.SNAPSHOT and pr.match + 1 >= r.log.first_index():
        # The follower installed the snapshot (or caught up past it): replicate from its match on.
        pr.become_probe()
        pr.become_replicate()
    elif pr.state is _PROGRESS_STATE.REPLICATE:
        pr.inflights.free_le(m.index)
    if r.maybe_commit():
        r.release_pending_read_index_messages()
        r.bcast_append()
    elif m.sender != r.id and was_paused:
        r.maybe_send_append(m.sender)
    if m.sender != r.id:
        while r.maybe_send_append(m.sender, send_if_empty=False):
            pass
        if m.sender == r.lead_transferee and pr.match == r.log.last_index():
            r.send(Message(T.TIMEOUT_NOW, to=m.sender))


def step_candidate(r: Raft, m: Message) -> None:
    """Candidates and pre-candidates: count votes; a leader of our term (Raft §5.2) makes us follow it."""
    t = m.type
    mine = T.PRE_VOTE_RESP if r.role is _ROLE.PRE_CANDIDATE else T.VOTE_RESP
    if t is T.PROP:
        raise ProposalDroppedError("no leader")
    if t in (T.APP, T.HEARTBEAT, T.SNAP):
        r.become_follower(m.term, m.sender)
        step_follower(r, m)
    elif t is mine:
        r.tracker.record_vote(m.sender, not m.reject)
        result = r.tracker.tally()
        if result is VoteResult.WON:
            if r.role is _ROLE.PRE_CANDIDATE:
                r.campaign(pre=False)
            else:
                r.become_leader()
                r.bcast_append()
        elif result is VoteResult.LOST:
            r.become_follower(r.term, NONE)


def step_follower(r: Raft, m: Message) -> None:
    t = m.type
    if t is T.PROP:
        if r.lead == NONE:
            raise ProposalDroppedError("no leader")
        r.send(replace(m, to=r.lead))  # forwarded: the leader appends it (term 0, handled there as a local proposal)
    elif t in (T.APP, T.HEARTBEAT, T.SNAP):
        r.election_elapsed = 0
        r.lead = m.sender
        if t is T.APP:
            r.handle_append_entries(m)
        elif t is T.HEARTBEAT:
            r.handle_heartbeat(m)
        else:
            r.handle_snapshot(m)
    elif t is T.TRANSFER_LEADER:
        if r.lead != NONE:
            r.send(replace(m, to=r.lead))
    elif t is T.TIMEOUT_NOW:
        # Leadership transfers skip pre-vote: the old leader asked for this election (thesis §3.10).
        r.hup(transfer=True)
    elif t is T.READ_INDEX:
        if r.lead == NONE:
            raise ProposalDroppedError("no leader to serve a read index")
        r.send(replace(m, to=r.lead))
    elif t is T.READ_INDEX_RESP:
        r.read_states.append(ReadState(m.index, m.context))

"""RawNode: the core packaged for a shell, with numbered Readies so persistence can run asynchronously.

The shell's loop (Raft thesis §10.2.1: the leader writes its log in parallel with its followers):

    rd = node.ready()
    send rd.messages                 # at once; they assert nothing about this member's disk
    write rd.snapshot, rd.entries, then rd.hard_state to storage; fsync if rd.must_sync
    node.on_persisted(rd.number)     # after the write; in Ready order
    send rd.persisted_messages       # only now
    apply rd.snapshot, then rd.committed_entries; node.advance_apply(last applied index)

The shell may take the next Ready before the previous one is persisted, provided it persists them in order.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass, field

from etcdx.raft.config import Config, Jitter
from etcdx.raft.core import Raft
from etcdx.raft.errors import ProposalDroppedError
from etcdx.raft.messages import (
    LOCAL_MESSAGES,
    ConfChange,
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
from etcdx.raft.storage import Storage

_MT = plain_members(MessageType)
_ROLE = plain_members(Role)
_ENTRY_TYPE = plain_members(EntryType)


@dataclass(slots=True)
class Ready:
    """One batch of work for the shell. Contract, in order:

    1. `snapshot` (if any), then `entries`, then `hard_state` (if any) are written to storage; an entry at
       index i replaces every stored entry at i or after. They are durable (fsync) before step 3 if
       `must_sync`; otherwise (only the commit index moved) a lazy write is allowed.
    2. `messages` may be sent as soon as the Ready is taken, even while step 1 runs: they depend on nothing
       this Ready or an earlier one persists (a leader's appends may leave before its own fsync).
    3. on_persisted(number) is called once this Ready and every earlier one are durable, in Ready order;
       only then are `persisted_messages` sent (acknowledgements of entries, granted or refused votes).
       This member's own acknowledgement and own vote are counted inside on_persisted, so a one-voter
       cluster commits nothing before its own fsync (etcd-io/etcd#14370).
    4. `snapshot` is applied, then `committed_entries` (all durable here already), then advance_apply(i)
       reports the last applied index. `read_states` are served once the applied index reaches theirs.
    """

    number: int
    soft_state: SoftState | None = None
    """Set when the leader or role changed since the previous Ready."""
    hard_state: HardState | None = None
    """Set when term, vote or commit changed since the previous Ready."""
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    persisted_messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    must_sync: bool = False


@dataclass(slots=True)
class _InFlight:
    """What on_persisted(number) does for a Ready: mark its entries and snapshot durable, then step the
    responses it addressed to this member."""

    number: int
    last_entry: tuple[int, int] | None
    snapshot_index: int
    self_messages: list[Message]


def _same_kind_ack(earlier: Message, later: Message) -> bool:
    return (
        earlier.type is later.type is _MT.APP_RESP
        and earlier.term == later.term
        and not earlier.reject
        and not later.reject
        and later.index >= earlier.index
    )


class RawNode:
    def __init__(self, cfg: Config, storage: Storage, rng: Jitter) -> None:
        self.raft = Raft(cfg, storage, rng)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()
        self._number = 0
        self._in_flight: deque[_InFlight] = deque()

    # -- inputs --------------------------------------------------------------------------------------------
    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        self.raft.step(Message(_MT.HUP))

    def propose(self, data: bytes) -> None:
        """Append data to the log (through the leader). Raises ProposalDroppedError if no leader can take it."""
        self.raft.step(Message(_MT.PROP, entries=(Entry(0, 0, _ENTRY_TYPE.NORMAL, data),)))

    def propose_batch(self, datas: list[bytes]) -> None:
        """Several proposals as one message: one append and one acknowledgement for all of them (a shell
        batches what its clients proposed since its last Ready). All are taken, or ProposalDroppedError."""
        r = self.raft
        if r.can_take_proposals():
            # What stepping the MsgProp would do on this leader, without building the message: a leader's
            # shell proposes every write, so this is its hot path.
            r.append_proposals(datas)
            r.bcast_append()
            return
        entries = tuple(Entry(0, 0, _ENTRY_TYPE.NORMAL, data) for data in datas)
        r.step(Message(_MT.PROP, entries=entries))

    def propose_conf_change(self, cc: ConfChange) -> None:
        self.raft.step(Message(_MT.PROP, entries=(Entry(0, 0, _ENTRY_TYPE.CONF_CHANGE, cc.encode()),)))

    def step(self, m: Message) -> None:
        """A message from a peer. Local message types (a confused or hostile peer) are ignored; a forwarded
        proposal the leader cannot take is dropped (its proposer times out and retries), never raised to the
        transport."""
        if m.type in LOCAL_MESSAGES:
            return
        with contextlib.suppress(ProposalDroppedError):
            self.raft.step(m)

    def read_index(self, context: bytes) -> None:
        """Ask for a read index; the answer comes as a ReadState with this context (Raft thesis §6.4)."""
        self.raft.step(Message(_MT.READ_INDEX, context=context))

    def read_index_now(self) -> int | None:
        """The answer read_index would give at once, without building a request: this member's commit index
        when it is the only voter and leads with an entry of its term committed (Raft thesis §6.4; no other
        member can have committed more); None when a ReadIndex must go through the core."""
        start = self.leading_alone_since()
        if start is not None and self.raft.log.committed >= start:
            return self.raft.log.committed
        return None

    def leading_alone_since(self) -> int | None:
        """The index of this member's first entry of its term when it leads as the only voter; None otherwise.
        While that holds no other member can lead or commit: that needs this member's vote or acknowledgements,
        which it gives only after a change of role or of the voters it has applied."""
        r = self.raft
        voters = r.tracker.conf.voters
        if r.role is _ROLE.LEADER and len(voters) == 1 and r.id in voters:
            return r.term_start_index
        return None

    def take_read_states(self) -> list[ReadState]:
        """The read states answered since the last Ready, taken now instead of in the next Ready: a member
        that can answer a ReadIndex alone (the only voter, leading, with an entry of its term committed)
        answers in read_index itself, and its shell can serve the read without waiting for a Ready."""
        states, self.raft.read_states = self.raft.read_states, []
        return states

    def transfer_leader(self, transferee: int) -> None:
        self.raft.step(Message(_MT.TRANSFER_LEADER, sender=transferee))

    def report_unreachable(self, member: int) -> None:
        self.raft.step(Message(_MT.UNREACHABLE, sender=member))

    def report_snapshot(self, member: int, failed: bool) -> None:
        self.raft.step(Message(_MT.SNAP_STATUS, sender=member, reject=failed))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Called by the shell when it applies a committed conf change entry (always; never skipped)."""
        return self.raft.apply_conf_change(cc)

    # -- outputs -------------------------------------------------------------------------------------------
    def has_ready(self) -> bool:
        """Whether ready() has work. A commit index that moved with nothing else to do is not work by itself:
        it is carried by the next Ready's HardState (a commit index needs no fsync; one lost in a crash is
        learned again), so a single voter does not spend a second Ready on each write."""
        r = self.raft
        u = r.log.unstable
        soft, hard = self._prev_soft, self._prev_hard
        return bool(
            r.lead != soft.leader
            or r.role is not soft.role
            or r.term != hard.term
            or r.vote != hard.vote
            or (u.snapshot is not None and not u.snapshot_in_progress)
            or r.log.has_next_unstable()
            or r.msgs
            or r.msgs_after_append
            or r.read_states
            or r.log.has_next_committed()
        )

    def ready(self) -> Ready:
        r = self.raft
        log = r.log
        self._number += 1
        rd = Ready(number=self._number)
        soft, hard = self._prev_soft, self._prev_hard
        if r.lead != soft.leader or r.role is not soft.role:
            rd.soft_state = self._prev_soft = r.soft_state()
        if r.term != hard.term or r.vote != hard.vote or log.committed != hard.commit:
            rd.must_sync = r.term != hard.term or r.vote != hard.vote
            rd.hard_state = self._prev_hard = r.hard_state()
        snapshot_index = 0
        u = log.unstable
        if u.snapshot is not None and not u.snapshot_in_progress:
            rd.snapshot = u.snapshot
            u.snapshot_in_progress = True
            snapshot_index = u.snapshot.index
            rd.must_sync = True
        rd.entries = log.next_unstable()
        last_entry = log.accept_unstable()
        if rd.entries:
            rd.must_sync = True
        rd.committed_entries = log.next_committed()
        if rd.committed_entries:
            log.accept_applying(rd.committed_entries[-1].index)
        rd.messages, r.msgs = r.msgs, []
        self_messages: list[Message] = []
        for m in r.msgs_after_append:
            if m.to != r.id:
                rd.persisted_messages.append(m)
            elif self_messages and _same_kind_ack(self_messages[-1], m):
                self_messages[-1] = m  # one self-acknowledgement, of the highest index, stands for a run of them
            else:
                self_messages.append(m)
        r.msgs_after_append = []
        rd.read_states, r.read_states = r.read_states, []
        self._in_flight.append(_InFlight(rd.number, last_entry, snapshot_index, self_messages))
        return rd

    def on_persisted(self, number: int) -> None:
        """Ready `number` and every earlier one are durable: count this member's own acknowledgements and
        votes made in them, and release their committed entries for applying."""
        log = self.raft.log
        while self._in_flight and self._in_flight[0].number <= number:
            done = self._in_flight.popleft()
            if done.snapshot_index:
                log.stable_snapshot_to(done.snapshot_index)
            if done.last_entry is not None:
                log.stable_to(*done.last_entry)
            for m in done.self_messages:
                self.raft.step_own_ack(m)

    def take_committed(self) -> list[Entry]:
        """Committed entries not handed out yet, for the shell to apply at once, without waiting for the next
        Ready: after on_persisted, which counts this member's own acknowledgement (a single voter's entries
        commit there). They are what the next Ready's committed_entries would hold, under the same rules
        (durable here, in log order, none while a snapshot waits to be applied); apply them, then
        advance_apply."""
        log = self.raft.log
        entries = log.next_committed()
        if entries:
            log.accept_applying(entries[-1].index)
        return entries

    def advance_apply(self, applied: int) -> None:
        self.raft.log.applied_to(applied)

    def advance(self, rd: Ready) -> None:
        """Synchronous use: everything in rd is persisted and applied."""
        self.on_persisted(rd.number)
        if rd.committed_entries:
            self.advance_apply(rd.committed_entries[-1].index)
        elif rd.snapshot is not None:
            self.advance_apply(max(self.raft.log.applied, rd.snapshot.index))

    # -- inspection ----------------------------------------------------------------------------------------
    @property
    def id(self) -> int:
        return self.raft.id

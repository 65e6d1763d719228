"""An in-memory cluster of RawNodes for tests: real MemoryStorage, a state machine that records what it
applied, and a network the test drives message by message. Deterministic: every choice is the caller's.

A member's durable state is exactly its MemoryStorage: a Ready is written there only when persisted, so
restart() loses everything a member had taken in Readies but not persisted (a crash before fsync).
"""

from __future__ import annotations

import ast
import random
from collections import deque
from dataclasses import dataclass, field

from etcdx.raft import (
    ConfChange,
    Config,
    ConfState,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    Ready,
    Snapshot,
)
from etcdx.raft.messages import describe_entry


def encode_state(applied: list[tuple[int, int, bytes]]) -> bytes:
    return repr(applied).encode()


def decode_state(data: bytes) -> list[tuple[int, int, bytes]]:
    return list(ast.literal_eval(data.decode())) if data else []


class SimStorage(MemoryStorage):
    """MemoryStorage whose snapshot() first snapshots the state machine at its applied index, as etcd's server
    does for a snapshot it sends: a learner added after the last stored snapshot must find itself in the
    configuration of the snapshot it is sent (a core ignores a snapshot of a configuration without it)."""

    member: Member | None = None

    def snapshot(self) -> Snapshot:
        m = self.member
        if m is not None and not self.snapshot_unavailable:
            applied = m.applied_index()
            if applied > super().snapshot().index and applied <= self.last_index():
                state = [a for a in m.applied if a[0] <= applied]
                self.create_snapshot(applied, m.node.raft.tracker.conf, encode_state(state))
        return super().snapshot()


@dataclass
class Member:
    id: int
    cfg: Config
    storage: MemoryStorage
    node: RawNode
    applied: list[tuple[int, int, bytes]] = field(default_factory=list)
    """The state machine: (index, term, data) of each normal entry applied, in order."""
    unpersisted: deque[Ready] = field(default_factory=deque)
    """Readies taken whose writes have not yet been made durable (async mode)."""
    conf_changes: list[ConfState] = field(default_factory=list)

    def persist_next(self) -> tuple[Ready, list[Message]]:
        """Write the oldest unpersisted Ready to storage, report it durable; returns it and the messages it
        released. The state machine applies its snapshot and committed entries."""
        rd = self.unpersisted.popleft()
        if rd.snapshot is not None:
            self.storage.apply_snapshot(rd.snapshot)
        self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        self.node.on_persisted(rd.number)
        return rd, rd.persisted_messages

    def apply(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            self.applied = decode_state(rd.snapshot.data)
            self.node.advance_apply(max(self.node.raft.log.applied, rd.snapshot.index))
        for e in rd.committed_entries:
            if e.type is EntryType.CONF_CHANGE:
                self.conf_changes.append(self.node.apply_conf_change(ConfChange.decode(e.data)))
            elif e.data:
                self.applied.append((e.index, e.term, e.data))
        if rd.committed_entries:
            self.node.advance_apply(rd.committed_entries[-1].index)

    def applied_index(self) -> int:
        return self.node.raft.log.applied

    def compact(self, index: int) -> None:
        """Snapshot the state machine at `index` (<= applied) and drop the log up to it."""
        state = [a for a in self.applied if a[0] <= index]
        if index > self.storage.snapshot().index:
            self.storage.create_snapshot(index, self.node.raft.tracker.conf, encode_state(state))
        if index >= self.storage.first_index():
            self.storage.compact(index)


class Cluster:
    def __init__(
        self,
        ids: list[int],
        voters: list[int] | None = None,
        learners: list[int] | None = None,
        seed: int = 0,
        **cfg: object,
    ) -> None:
        voters = ids if voters is None else voters
        self.conf = ConfState(frozenset(voters), frozenset(learners or ()))
        self.cfg = cfg
        self.seed = seed
        self.members: dict[int, Member] = {}
        self.network: list[Message] = []
        self.cut: set[tuple[int, int]] = set()
        """Directed links that drop every message: (sender, receiver)."""
        self.on_ready = None
        """Called with (member id, read states) for each Ready process_ready takes."""
        for member_id in ids:
            self.add_member(member_id, self.conf)

    def add_member(self, member_id: int, conf: ConfState) -> Member:
        storage = SimStorage(conf)
        m = self._start(member_id, storage)
        self.members[member_id] = m
        return m

    def _start(self, member_id: int, storage: MemoryStorage, applied: list | None = None) -> Member:
        snap = storage.snapshot()
        cfg = Config(id=member_id, applied=snap.index, **self.cfg)  # type: ignore[arg-type]
        rng = random.Random(self.seed * 1000 + member_id)
        node = RawNode(cfg, storage, rng)
        member = Member(member_id, cfg, storage, node, applied=decode_state(snap.data))
        if isinstance(storage, SimStorage):
            storage.member = member
        return member

    def restart(self, member_id: int) -> Member:
        """Crash and restart: what was not persisted is gone. The state machine is durable as applied (as the
        server's LMDB state is, with its applied index): it is kept as a snapshot at the applied index, and
        the member restarts from there, possibly ahead of the commit index its hard state recorded."""
        old = self.members[member_id]
        applied = old.applied_index()
        if applied > old.storage.snapshot().index:
            state = [a for a in old.applied if a[0] <= applied]
            old.storage.create_snapshot(applied, old.node.raft.tracker.conf, encode_state(state))
        self.members[member_id] = m = self._start(member_id, old.storage)
        return m

    # -- network -------------------------------------------------------------------------------------------
    def send(self, msgs: list[Message]) -> None:
        """Put msgs in flight; a message on a cut link is lost at once (and again checked on delivery)."""
        for msg in msgs:
            if (msg.sender, msg.to) in self.cut:
                self.drop(msg)
            else:
                self.network.append(msg)

    def partition(self, *groups: list[int]) -> None:
        """Cut every link between members of different groups (both directions)."""
        self.cut = set()
        where = {m: k for k, group in enumerate(groups) for m in group}
        for a in self.members:
            for b in self.members:
                if a != b and where.get(a, -1) != where.get(b, -2):
                    self.cut.add((a, b))

    def isolate(self, member_id: int) -> None:
        self.partition([member_id], [m for m in self.members if m != member_id])

    def heal(self) -> None:
        self.cut = set()

    def deliver(self, msg: Message) -> bool:
        """Step msg on its receiver unless the link is cut or the receiver is unknown. True if delivered.
        The sender of a snapshot hears how its send went, as a transport reports it (RawNode.report_snapshot)."""
        if (msg.sender, msg.to) in self.cut or msg.to not in self.members:
            self.drop(msg)
            return False
        self.members[msg.to].node.step(msg)
        if msg.type is MessageType.SNAP and msg.sender in self.members:
            self.members[msg.sender].node.report_snapshot(msg.to, failed=False)
        return True

    def drop(self, msg: Message) -> None:
        if msg.type is MessageType.SNAP and msg.sender in self.members:
            self.members[msg.sender].node.report_snapshot(msg.to, failed=True)

    def take_for(self, member_id: int) -> list[Message]:
        mine = [m for m in self.network if m.to == member_id]
        self.network = [m for m in self.network if m.to != member_id]
        return mine

    # -- synchronous driving -------------------------------------------------------------------------------
    def process_ready(self, member_id: int) -> Ready | None:
        """Take one Ready, send its messages, persist it, send the persisted messages, apply it."""
        m = self.members[member_id]
        if not m.node.has_ready():
            return None
        rd = m.node.ready()
        if self.on_ready is not None:
            self.on_ready(member_id, rd.read_states)
        self.send(rd.messages)
        m.unpersisted.append(rd)
        while m.unpersisted:
            done, released = m.persist_next()
            self.send(released)
            m.apply(done)
        return rd

    def stabilize(self, max_rounds: int = 1000) -> None:
        for _ in range(max_rounds):
            busy = False
            for member_id in sorted(self.members):
                while self.process_ready(member_id) is not None:
                    busy = True
            if self.network:
                busy = True
                pending, self.network = self.network, []
                for msg in pending:
                    self.deliver(msg)
            if not busy:
                return
        raise AssertionError("cluster did not stabilize")

    def tick(self, member_id: int, n: int = 1) -> None:
        for _ in range(n):
            self.members[member_id].node.tick()

    def elect(self, member_id: int) -> None:
        self.members[member_id].node.campaign()
        self.stabilize()

    def leader(self) -> int | None:
        leaders = [m.id for m in self.members.values() if m.node.raft.lead == m.id]
        return max(leaders, key=lambda i: self.members[i].node.raft.term) if leaders else None

    def log_of(self, member_id: int) -> list[Entry]:
        return self.members[member_id].node.raft.log.all_entries()

    def describe_log(self, member_id: int) -> str:
        return "\n".join(describe_entry(e) for e in self.log_of(member_id)) or "(empty)"

"""One simulated member: the shell the server will be, around a real RawNode and the real applier.

What it holds, and what survives a crash:

- ``storage`` (DurableStorage): the member's Raft disk. A Ready is written to it only when the simulated
  fsync that covers it completes, so a crash loses every Ready taken but not yet persisted;
- ``backend``: the store's MemoryBackend (etcdx.mvcc.memory_backend), whose committed state is what survives;
  ``kv`` (KVStore) and ``applier`` (etcdx.server.apply.Applier, the server's own) run on it and are rebuilt
  from it at every restart. The batch is committed after every applied batch (the applied state is durable as
  soon as it is applied, as the server's backend plus its WAL replay make it);
- volatile: the RawNode, the proposal waiters (keyed by InternalRequest.id, never by log index: a new leader
  may overwrite an uncommitted index with another entry), the linearizable reads waiting for a read index.

The persistence contract followed (etcdx.raft.raw_node.Ready): messages go at once; persisted_messages only
after the write; committed entries are applied after the write; a read is served once applied >= its read
index (Raft thesis §6.4). Snapshots carry the backend's image (StorageBackend.snapshot): a lagging follower
restores the leader's image before its Raft storage records the snapshot (so a crash in between cannot leave
the log pointing past the state machine).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from etcdx import errors
from etcdx.lease.lessor import Lessor
from etcdx.mvcc.alarms import Alarms
from etcdx.mvcc.kvstore import KVStore
from etcdx.mvcc.memory_backend import MemoryBackend
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.raft import (
    ConfChange,
    Config,
    ConfState,
    EntryType,
    MemoryStorage,
    Message,
    ProposalDroppedError,
    RawNode,
    ReadState,
    Ready,
    Snapshot,
)
from etcdx.server.apply import Applier
from tests.sim import convert
from tests.support.lincheck import history as h

Answer = Callable[[h.Response | None], None]
"""A client's continuation: the response, or None when the outcome is unknown (failed before an answer)."""


class DurableStorage(MemoryStorage):
    """The Raft log as it is on disk. snapshot() first snapshots the state machine at its applied index when
    that is newer than the stored snapshot (as etcd's server does for a snapshot it sends), so a learner
    added since the last compaction finds itself in the snapshot's configuration."""

    shell: MemberShell | None = None

    def snapshot(self) -> Snapshot:
        """What the core calls (to send a snapshot, or at start)."""
        s = self.shell
        if s is not None and not self.snapshot_unavailable:
            applied = s.applied_index()
            if applied > self.stored_snapshot().index and applied <= self.last_index():
                self.create_snapshot(applied, s.node.raft.tracker.conf, s.kv_bytes())
        return self.stored_snapshot()

    def stored_snapshot(self) -> Snapshot:
        """The latest snapshot taken, without taking a new one."""
        return super().snapshot()


@dataclass
class MemberSettings:
    """The core's settings (etcdx.raft.Config), and when the shell snapshots (etcd's --snapshot-count)."""

    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg: int | None = 1 << 20
    max_inflight_msgs: int = 256
    pre_vote: bool = True
    check_quorum: bool = True
    snapshot_count: int | None = None
    """Snapshot the state machine once this many entries were applied since the last snapshot (None: only
    when the simulation compacts)."""
    catchup_entries: int = 0
    """Entries kept in the log below a snapshot, for followers slightly behind (etcd keeps 5000)."""


class MemberShell:
    def __init__(self, member_id: int, conf: ConfState, settings: MemberSettings, seed: int) -> None:
        self.id = member_id
        self.settings = settings
        self.seed = seed
        self.storage = DurableStorage(conf)
        self.backend = MemoryBackend()
        self.generation = 0
        self.down_until = 0
        self.counts: dict[str, int] = {"snapshots installed": 0, "conf changes applied (summed over members)": 0}
        """What this member did over the run (all incarnations), for the campaign's summary."""
        self._start()

    # -- life ----------------------------------------------------------------------------------------------
    def _start(self) -> None:
        """(Re)start from what is durable: the Raft storage and the backend's committed state."""
        self.generation += 1
        self._open_store()
        snap = self.storage.stored_snapshot()
        s = self.settings
        cfg = Config(
            id=self.id,
            election_tick=s.election_tick,
            heartbeat_tick=s.heartbeat_tick,
            max_size_per_msg=s.max_size_per_msg,
            max_inflight_msgs=s.max_inflight_msgs,
            pre_vote=s.pre_vote,
            check_quorum=s.check_quorum,
            applied=snap.index,
        )
        self.node = RawNode(cfg, self.storage, random.Random(self.seed * 1000 + self.id * 10 + self.generation))
        self.storage.shell = self
        self.applied: list[tuple[int, int, bytes]] = []
        """(index, term, data) of each normal entry applied since this start (state machine safety §5.4.3)."""
        self.unpersisted: deque[Ready] = deque()
        self.waiters: dict[int, tuple[h.Request, Answer]] = {}
        self.reads: dict[bytes, tuple[h.Range, Answer]] = {}
        self.read_states: list[ReadState] = []
        self._next_request = 0

    def crash_and_restart(self) -> None:
        """Lose everything not persisted: unwritten Readies, waiters, reads, the core's volatile state. The
        applied state is durable; it becomes a snapshot at the applied index if the log's is older."""
        applied = self.applied_index()
        if applied > self.storage.stored_snapshot().index:
            self.storage.create_snapshot(applied, self.node.raft.tracker.conf, self.kv_bytes())
        self.restart()

    def restart(self) -> None:
        """Stop (clients waiting get no answer, the backend drops its open batch) and start from storage."""
        for _, answer in [*self.waiters.values(), *self.reads.values()]:
            answer(None)
        self.storage.shell = None
        self.backend.close()
        self._start()

    def _open_store(self) -> None:
        lessor = Lessor(min_ttl=1, clock=lambda: 0.0)  # leases live until revoked: no expiry in the simulation
        self.kv = KVStore(self.backend, lessor)
        self.applier = Applier(self.kv, lessor, Alarms())

    def is_up(self, now: int) -> bool:
        return now >= self.down_until

    # -- the state machine ---------------------------------------------------------------------------------
    def applied_index(self) -> int:
        return self.node.raft.log.applied

    def kv_bytes(self) -> bytes:
        """The backend's image as of now (every applied entry: the batch is committed first)."""
        self.kv.commit()
        return self.backend.snapshot()

    def _install_kv(self, image: bytes) -> None:
        """Replace the backend's state with a leader's image of it, and reopen the store on it."""
        self.kv.abort()
        self.backend.restore(image)
        self._open_store()

    def compact(self, keep: int = 0) -> None:
        """Snapshot the state machine at the applied index and drop the log up to `keep` entries below it."""
        applied = self.applied_index()
        if applied > self.storage.stored_snapshot().index:
            self.storage.create_snapshot(applied, self.node.raft.tracker.conf, self.kv_bytes())
        if applied - keep >= self.storage.first_index():
            self.storage.compact(applied - keep)

    def maybe_snapshot(self) -> None:
        """etcd's --snapshot-count: snapshot and compact once enough entries were applied since the last."""
        s = self.settings
        if (
            s.snapshot_count is not None
            and self.applied_index() - self.storage.stored_snapshot().index >= s.snapshot_count
        ):
            self.compact(s.catchup_entries)

    # -- client requests -----------------------------------------------------------------------------------
    def new_request_id(self) -> int:
        """Unique across members and restarts (an entry proposed before a crash may apply after it)."""
        self._next_request += 1
        return (self.id << 48) | (self.generation << 32) | self._next_request

    def write(self, req: h.Request, answer: Answer) -> bool:
        """Propose req; False if the core refused it at once (no leader known, a transfer in progress...):
        then nothing entered any log and the request had no effect (etcd answers such a request with an
        error such as 'etcdserver: no leader', and the client knows it was not applied)."""
        request_id = self.new_request_id()
        data = convert.internal_request(request_id, req).SerializeToString()
        try:
            self.node.propose(data)
        except ProposalDroppedError:
            return False
        self.waiters[request_id] = (req, answer)
        return True

    def read(self, req: h.Range, ctx: bytes, answer: Answer) -> bool:
        """A serializable Range is served from the local store at once; a linearizable one waits for a read
        index from the leader and for this member to have applied up to it. False if refused at once."""
        if req.serializable:
            answer(self.serve(req))
            return True
        try:
            self.node.read_index(ctx)
        except ProposalDroppedError:
            return False
        self.reads[ctx] = (req, answer)
        return True

    def serve(self, req: h.Range) -> h.Response:
        try:
            return convert.response(req, self.kv.range(convert.range_request(req)))
        except errors.EtcdError as exc:
            return convert.response(req, exc)

    # -- the Ready loop ------------------------------------------------------------------------------------
    def take_readies(self) -> tuple[list[Message], list[ReadState]]:
        """Take every Ready on offer; returns the messages that may leave now and the new read states."""
        out: list[Message] = []
        states: list[ReadState] = []
        while self.node.has_ready():
            rd = self.node.ready()
            out.extend(rd.messages)
            states.extend(rd.read_states)
            self.unpersisted.append(rd)
        self.read_states.extend(states)
        return out, states

    def persist_through(self, number: int) -> list[Message]:
        """The fsync covering Readies up to `number` completed: write them, report them durable, apply.
        Returns the messages released by the write."""
        released: list[Message] = []
        while self.unpersisted and self.unpersisted[0].number <= number:
            rd = self.unpersisted.popleft()
            released.extend(self.write_ready(rd))
            self.apply(rd)
        return released

    def write_ready(self, rd: Ready) -> list[Message]:
        """Write rd to storage and report it durable; returns the messages that waited for that."""
        if rd.snapshot is not None:
            self.counts["snapshots installed"] += 1
            self._install_kv(rd.snapshot.data)
            self.storage.apply_snapshot(rd.snapshot)
        self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        self.node.on_persisted(rd.number)
        return rd.persisted_messages

    def apply(self, rd: Ready) -> None:
        node = self.node
        if rd.snapshot is not None:
            node.advance_apply(max(node.raft.log.applied, rd.snapshot.index))
        answers = []
        if rd.committed_entries:
            with self.kv.apply_batch():
                for e in rd.committed_entries:
                    if e.type is EntryType.CONF_CHANGE:
                        node.apply_conf_change(ConfChange.decode(e.data))
                        self.counts["conf changes applied (summed over members)"] += 1
                    elif e.data:
                        self.applied.append((e.index, e.term, e.data))
                        request = InternalRequest.FromString(e.data)
                        result = self.applier.apply_request(e.index, request)
                        waiter = self.waiters.pop(request.id, None)
                        if waiter is not None:
                            answers.append((waiter, result))
            self.kv.commit()
            node.advance_apply(rd.committed_entries[-1].index)
            self.maybe_snapshot()
        for (req, answer), result in answers:
            answer(convert.response(req, result))
        self.serve_reads()

    def serve_reads(self) -> None:
        applied = self.applied_index()
        waiting = []
        for rs in self.read_states:
            if rs.index > applied:
                waiting.append(rs)
                continue
            pending = self.reads.pop(rs.context, None)
            if pending is not None:
                req, answer = pending
                answer(self.serve(req))
        self.read_states = waiting

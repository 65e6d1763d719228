"""A read worker's Range: served from the member's LMDB file when the worker may, relayed to the member when not.

Served here (one LMDB read transaction per read: the follower catches the key index up to it, then KVStore's own
encoding answers from it, so the bytes are the member's for the same state):
- a serializable Range, from the newest committed snapshot when that holds every entry the member had applied
  when the read arrived (its applied index reaches the member's mark, applied_mark.py), so the read sees every
  write acknowledged before it, through any process, as on etcd. The member commits every
  --backend-batch-interval, so under writes the snapshot is often behind: the read then waits for a barrier, as
  a linearizable read does;
- a linearizable Range, the same way while the member leads alone (the only voter, leading, its term's first
  entry applied: applied_mark.py says why that is linearizable; a single member's case, where the member's own
  linearizable reads need no ReadIndex round either), otherwise after a barrier (below).
Relayed to the member unchanged (its answer is the client's): any Range while auth is enabled (read from the
auth table in the same read transaction: the member checks permissions), one that requires a leader
(``hasleader``), one that does not parse, one naming a client-api-version the member's /metrics counts keep no
slot for (served_counts.py), and every Range while the worker knows no identity answer yet. Every Range answered
here, with its answer or its error, is counted for the member's /metrics.

Barrier, and why a linearizable read served here is linearizable: a read R arrives at time t0. R waits for the
first barrier call sent after it arrived, at t1 > t0 (a barrier sent before R arrived cannot vouch for R; one is
sent per event-loop turn in which reads arrived, up to MAX_BARRIERS_IN_FLIGHT at once, so R's barrier need not
wait for an earlier one's answer). The member answers it (member_side.py) after its
ReadIndex read completes, so its applied state then holds every write acknowledged before t1, and every state
any read could have observed before t1; it commits that state to the file and answers its revision B. R is then
served from a snapshot at revision >= B: it holds every write that completed before R began, and it is a state
the member held between R's arrival and R's answer (the member applied it no later than the read transaction
began, and applied nothing newer before B). If the member's ReadIndex read for the barrier fails (request
timed out, leader changed), R fails with that error: R's own read on the member, issued no earlier, would have
waited for that same ReadIndex round or a later one. If the snapshot does not reach B (the file was replaced
by a defragmentation or a snapshot install and must be reopened), or the barrier fails for another reason (a
learner, the member unreachable: RELAY_MARK; the worker's own barrier deadline), R is relayed to the member,
which serves it as it serves any linearizable read.

Serving what a barrier covers: its answer may cover many reads (every client of the worker waits for the same
barrier when the reads are costly, such as 500-key pages). The link's reader serves them for up to SERVE_BUDGET
seconds and hands the rest to a serving task, which serves them a budget at a time with their replies sent and a
checkpoint between. So the worker reads its clients' next requests and sends their barrier while it still serves
the last batch, instead of idling for the barrier's round trip after each batch. Serving later is still
linearizable: the snapshot is then newer, and still a state the member held before the read's answer.

Response headers: cluster id, member id and raft term are the member's, from the last barrier or identity
answer (an identity refresh, which starts no read on the member, runs every IDENTITY_REFRESH seconds, so a new
term shows within that); the revision is the snapshot's.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass

import trio
from google.protobuf.message import DecodeError

from etcdx.api.grpc.kv_checks import check_range
from etcdx.auth.records import ENABLED_KEY
from etcdx.errors import EtcdError, StatusCode
from etcdx.log import get_logger
from etcdx.mvcc.backend import ReadOnlyBackend
from etcdx.mvcc.schema import AUTH_DB
from etcdx.net.grpc_server import DeferredUnaryMethod, Reply, RpcContext, flush_deferred_replies
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.proxy.forward import upstream_metadata
from etcdx.worker.applied_mark import AppliedMark
from etcdx.worker.follower import IndexFollower
from etcdx.worker.link_client import MemberLink
from etcdx.worker.link_frames import BARRIER_PATH, IDENTITY_PATH, RELAY_MARK
from etcdx.worker.served_counts import RANGE_PATH, WorkerCounts, version_slot
from etcdx.worker.snapshot_store import SnapshotStore

log = get_logger("etcdx.worker")

IDENTITY_REFRESH = 1.0  # seconds between identity refreshes
BARRIER_TIMEOUT = 30.0  # the member answers or fails a barrier within its own request timeout, well below this
MAX_BARRIERS_IN_FLIGHT = 16  # a barrier is sent per event-loop turn with reads waiting, up to this many at once
RELEASE_EVERY_BYTES = 16 << 20  # key-row bytes the index reads between two unmappings of the file's pages
SERVE_BUDGET = 0.0005  # seconds of serving a barrier's reads before the rest wait for a checkpoint (module doc)
RangeRequest = rpc_pb2.RangeRequest
ResponseHeader = rpc_pb2.ResponseHeader


class _NotYet(Exception):
    """The snapshot is below the revision the read must see."""


@dataclass
class _Read:
    request: rpc_pb2.RangeRequest
    data: bytes
    ctx: RpcContext
    reply: Reply
    version_slot: int  # where the member's /metrics counts it if answered here (served_counts.py)


class LocalRange:
    def __init__(
        self, backend_path: str, map_size: int, link: MemberLink, mark: AppliedMark, counts: WorkerCounts
    ) -> None:
        self._backend_path = backend_path
        self._counts = counts
        self._map_size = map_size
        self._link = link
        self._mark = mark
        self._backend: ReadOnlyBackend | None = None
        self._follower = IndexFollower()
        self._followed = -1  # the LMDB transaction id the follower last followed
        self._bytes_at_release = 0  # the follower's bytes_read when the file's pages were last unmapped
        self._identity: tuple[int, int, int] | None = None  # the last barrier's cluster_id, member_id, raft_term
        self._waiting: list[_Read] = []  # reads for the next barrier
        self._wake = trio.Event()
        self._in_flight = 0  # barriers sent and not answered yet
        self._room = trio.Event()  # set when a barrier is answered
        # Reads whose barrier answered, with its revision, not served yet (oldest first).
        self._covered: collections.deque[tuple[_Read, int]] = collections.deque()
        self._serve_wake = trio.Event()  # set when _covered has reads for the serving task
        self.served = 0  # Ranges answered from the file (serializable and linearizable)
        self.relayed = 0  # Ranges relayed to the member
        self.barriers = 0
        self.failed_with_barrier = 0  # Ranges answered with their barrier's failure (no leader, a timeout)
        self.served_by_task = 0  # covered reads the link's reader left to the serving task (module doc)

    def method(self) -> DeferredUnaryMethod:
        return DeferredUnaryMethod(self._range)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Opens the file and builds the key index, gets the member's identity, then runs the barriers and the
        identity refreshes."""
        self._open()
        try:
            async with trio.open_nursery() as nursery:
                await self._first_identity()
                task_status.started()
                nursery.start_soon(self._barrier_loop)
                nursery.start_soon(self._serve_loop)
                while True:
                    await trio.sleep(IDENTITY_REFRESH)
                    if self._backend is not None and self._backend.replaced():
                        self._open()
                    deadline = trio.current_time() + BARRIER_TIMEOUT
                    self._link.call(IDENTITY_PATH, b"", {}, deadline, self._identity_answered)
        finally:
            if self._backend is not None:
                self._backend.close()

    def _open(self) -> None:
        """(Re)opens the member's file and rebuilds the key index from it."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        self._backend = ReadOnlyBackend(self._backend_path, self._map_size)
        self._follower = IndexFollower()
        self._followed = -1
        self._bytes_at_release = 0
        with self._backend.begin_read() as view:
            self._catch_up(view)
        self._backend.release_mapped_pages()  # the build read every page; reads need few of them
        log.info("read worker: key index built", keys=len(self._follower.index), revision=self._follower.seen)

    def _catch_up(self, view) -> None:
        """Brings the key index up to ``view`` (nothing to do when nothing was committed since it last followed).
        The follower reads each key row once (all of them when it builds the index), and every page it read stays
        mapped in this process: so each RELEASE_EVERY_BYTES of rows read, the file's pages are unmapped from this
        process (Backend.release_mapped_pages); the pages later reads touch are mapped again from the page cache."""
        if view.txn_id() != self._followed:
            follower = self._follower
            follower.follow(view)
            self._followed = view.txn_id()
            if follower.bytes_read - self._bytes_at_release >= RELEASE_EVERY_BYTES:
                self._bytes_at_release = follower.bytes_read
                self._backend.release_mapped_pages()

    # -- the method ------------------------------------------------------------------------------

    def _range(self, data: bytes, ctx: RpcContext, reply: Reply) -> bytes | None:
        slot = version_slot(ctx.metadata)
        if self._identity is None or slot is None or "hasleader" in ctx.metadata:
            return self._relay(data, ctx, reply)
        try:
            request = RangeRequest.FromString(data)
        except DecodeError:
            return self._relay(data, ctx, reply)
        read = _Read(request, data, ctx, reply, slot)
        applied = self._mark.read() if request.serializable else self._mark.read_if_alone()
        if applied is not None:
            try:
                return self._serve(read, applied=applied)
            except _NotYet:
                pass  # the member applied more than the snapshot holds: wait for a barrier
        self._waiting.append(read)
        self._wake.set()
        return None

    def _serve(self, read: _Read, revision: int = 0, applied: int = 0) -> bytes | None:
        """The answer from the newest snapshot (None: relayed); raises the read's EtcdError, or _NotYet when the
        snapshot's revision is below ``revision`` or its applied index below ``applied``. An answer or an
        EtcdError is counted for the member's /metrics."""
        assert self._backend is not None and self._identity is not None
        error: EtcdError | None = None
        with self._backend.begin_read() as view:
            if _auth_enabled(view):
                answer = None
            else:
                self._catch_up(view)
                if self._follower.current_revision < revision or self._follower.applied_index < applied:
                    raise _NotYet
                try:
                    check_range(read.request)
                    answer = SnapshotStore(self._follower, view).range_encoded(read.request, self._identity)
                except EtcdError as exc:
                    error = exc  # raised once the read transaction is closed
        if error is not None:
            self._counts.answered(read.version_slot, error.code)
            raise error
        if answer is None:
            return self._relay(read.data, read.ctx, read.reply)
        self.served += 1
        self._counts.answered(read.version_slot, StatusCode.OK)
        return answer

    def _relay(self, data: bytes, ctx: RpcContext, reply: Reply) -> None:
        self.relayed += 1
        self._link.call(RANGE_PATH, data, upstream_metadata(ctx), ctx.deadline, reply, batched=True)

    # -- barriers ---------------------------------------------------------------------------------

    async def _first_identity(self) -> None:
        """The member's header, awaited before the worker serves; until one is known, every Range is relayed."""
        try:
            with trio.fail_after(BARRIER_TIMEOUT):
                self._take_identity(await self._link.unary(IDENTITY_PATH, b"", {}))
        except (EtcdError, trio.TooSlowError) as exc:
            log.debug("read worker: identity refresh failed", error=str(exc))

    def _take_identity(self, answer: bytes) -> int:
        """Keeps a barrier's or an identity refresh's header as the worker's identity; returns its revision."""
        header = ResponseHeader.FromString(answer)
        self._identity = header.cluster_id, header.member_id, header.raft_term
        return header.revision

    def _identity_answered(self, outcome: bytes | EtcdError) -> None:
        if isinstance(outcome, EtcdError):
            log.debug("read worker: identity refresh failed", error=outcome.message)
        else:
            self._take_identity(outcome)

    async def _barrier_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._in_flight >= MAX_BARRIERS_IN_FLIGHT:
                self._room = trio.Event()
                await self._room.wait()
            reads, self._waiting = self._waiting, []  # only reads that arrived before this barrier is sent
            self._in_flight += 1
            deadline = trio.current_time() + BARRIER_TIMEOUT
            self._link.call(BARRIER_PATH, b"", {}, deadline, functools.partial(self._barrier_answered, reads))

    def _barrier_answered(self, reads: list[_Read], outcome: bytes | EtcdError) -> None:
        """The link's reply to a barrier: answers the reads it covers, or queues them for the serving task
        (module doc). The link delivers answers in the order the member gave them, so the identity kept is the
        member's latest."""
        self._in_flight -= 1
        self._room.set()
        if isinstance(outcome, EtcdError):
            log.debug("read worker: barrier failed", error=outcome.message)
            if _fails_the_reads(outcome):
                for read in reads:
                    self.failed_with_barrier += 1
                    self._counts.answered(read.version_slot, outcome.code)
                    read.reply(outcome)
                return
            for read in reads:
                self._finish(read, None)
            return
        self.barriers += 1
        revision = self._take_identity(outcome)
        covered = self._covered
        covered.extend((read, revision) for read in reads)
        if len(covered) == len(reads):  # nothing was waiting before these: serve what the budget allows now
            self._serve_for_a_budget()
        if covered:
            self._serve_wake.set()

    def _serve_for_a_budget(self) -> None:
        """Serves covered reads, oldest first, until none is left or SERVE_BUDGET has passed: runs of them from
        one snapshot (_serve_run), and one by one (_finish) a read no run can serve."""
        covered = self._covered
        until = trio.current_time() + SERVE_BUDGET
        while covered:
            if not self._serve_run(until):
                self._finish(*covered.popleft())
            if trio.current_time() >= until:
                return

    def _serve_run(self, until: float) -> int:
        """Serves covered reads from the front, in one read transaction with one header, while the snapshot
        reaches their barrier's revision and ``until`` has not passed; returns how many it took (0 when the front
        read needs _finish: the snapshot is below its revision). Each answer, or its EtcdError, is counted and
        given once the transaction is closed, as _serve does. While auth is enabled it relays every covered
        read instead (the member checks permissions)."""
        assert self._backend is not None and self._identity is not None
        if self._backend.replaced():
            # A defragmentation or a snapshot install swapped the file since it was opened. The old one may still
            # reach the barrier's revision while missing what changes no revision (AuthEnable, a compaction):
            # the reads are served from the new one.
            self._open()
        covered, follower = self._covered, self._follower
        outcomes: list[tuple[_Read, bytes | EtcdError]] = []
        with self._backend.begin_read() as view:
            if _auth_enabled(view):  # the member checks permissions: every covered read goes to it
                taken = len(covered)
                while covered:
                    read = covered.popleft()[0]
                    self._relay(read.data, read.ctx, read.reply)
                return taken
            self._catch_up(view)
            store, identity = SnapshotStore(follower, view), self._identity
            while covered and covered[0][1] <= follower.current_revision:
                read = covered.popleft()[0]
                try:
                    check_range(read.request)
                    outcomes.append((read, store.range_encoded(read.request, identity)))
                except EtcdError as exc:
                    outcomes.append((read, exc))
                if trio.current_time() >= until:
                    break
        for read, outcome in outcomes:
            self._counts.answered(read.version_slot, outcome.code if isinstance(outcome, EtcdError) else StatusCode.OK)
            if not isinstance(outcome, EtcdError):
                self.served += 1
            read.reply(outcome)
        return len(outcomes)

    async def _serve_loop(self) -> None:
        """Serves the covered reads the link's reader left, a budget at a time, their replies sent after each."""
        while True:
            await self._serve_wake.wait()
            self._serve_wake = trio.Event()
            while self._covered:
                before = len(self._covered)
                self._serve_for_a_budget()
                self.served_by_task += before - len(self._covered)
                flush_deferred_replies()
                await trio.lowlevel.checkpoint()

    def _finish(self, read: _Read, revision: int | None) -> None:
        """Answers a read whose barrier answered ``revision`` (None: failed: relayed)."""
        if revision is not None:
            for _ in range(2):
                try:
                    answer = self._serve(read, revision=revision)
                except _NotYet:
                    if self._backend is not None and self._backend.replaced():
                        self._open()
                        continue
                    break
                except EtcdError as exc:
                    read.reply(exc)
                    return
                if answer is not None:
                    read.reply(answer)
                return
        self._relay(read.data, read.ctx, read.reply)


def _fails_the_reads(error: EtcdError) -> bool:
    """Whether a barrier's failure is the member's ReadIndex read failing, which is the answer of the reads the
    barrier covers; otherwise they are relayed (a RELAY_MARK failure, or the worker's own barrier deadline)."""
    return not error.message.startswith(RELAY_MARK) and error.code != StatusCode.DEADLINE_EXCEEDED


def _auth_enabled(view) -> bool:
    return view.get(AUTH_DB, ENABLED_KEY) == b"\x01"

"""EtcdServer: the core shell on trio. It owns the Ready loop (propose -> WAL -> apply) and serves reads.

Durability contract: a proposal's waiter is resolved only after its entry was fsynced to the WAL and
applied to the store. Group commit falls out of the loop: while one fsync runs off the event loop,
new proposals accumulate in the log and the next iteration persists all of them with one fsync, and
applies the batch fsynced before while that fsync runs.
On start, WAL entries past the backend's consistent index are re-applied (apply is idempotent per
index), so a backend that lags the WAL after a crash catches up before any client is served.

Fail-stop: a log that cannot be written or a backend that cannot be synced stops the member with
MemberStopped (one message; the command logs it and exits non-zero) instead of leaving writes to hang.
So does a damaged log at start-up (nothing on disk is changed then).

Batch transaction (etcd's): applies go into one backend write transaction that stays open across Ready
iterations; it is committed (with its fdatasync, on the event loop: LMDB ends a write transaction on the thread
that began it) --backend-batch-interval after its first change or once it holds --backend-batch-limit entries,
right after a compaction (as etcd forces one), and before anything that needs the committed file (a
defragmentation's copy, close). Reads go through it; Status's sizes are those of the last commit, as in etcd.

WAL release: the backend is the snapshot. Once --snapshot-count entries were applied since the last
release point, and a backend sync that started after they were committed has completed, the release point
moves to that index minus --experimental-snapshot-catchup-entries (only committed entries count: the sync
covers what was committed when it started); after every backend sync the WAL removes
its oldest segments wholly below the point while more than --max-wals remain (0: it keeps them all).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from typing import Any

import trio

from etcdx import errors
from etcdx.lease.lessor import MAX_LEASE_TTL, Lessor, minimum_ttl
from etcdx.log import get_logger
from etcdx.mvcc.alarms import Alarms
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.kvstore import ApplyFailed, KVStore
from etcdx.mvcc.watch import WatchHub
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.pb.etcdxpb.raft_pb2 import Entry
from etcdx.server import data_dir, metrics
from etcdx.server.local_log import LocalLog
from etcdx.server.quota import Quota, QuotaExceeded
from etcdx.server.settings import ServerSettings
from etcdx.server.waiters import Waiters
from etcdx.v2store.bootstrap import register_member, state_if_changed
from etcdx.v2store.store import V2Store
from etcdx.wal.wal import WAL, WalCorruptError, WalGapError, WalWriteError

log = get_logger("etcdx.server")

LEASE_CHECK_INTERVAL = 0.5
LEASE_REVOKES_PER_CHECK = 500  # etcd revokes at most 1000 expired leases a second
LEASE_REVOKE_RETRY = 3.0
# A commit leaves its meta page unsynced (MDB_NOMETASYNC, see Backend); a backend sync this long after a commit
# makes it durable, so that the WAL can be released below it.
BACKEND_SYNC_INTERVAL = 0.1
# etcd's maxGapBetweenApplyAndCommitIndex: a proposal is refused with "too many requests" while more entries
# than this wait to be applied.
MAX_APPLY_BACKLOG = 5000


class MemberStopped(Exception):
    """The member cannot go on without risking acknowledged data; the message says why, in one line."""


class EtcdServer:
    """One member. Public methods are what the API layer calls; nothing here knows about gRPC."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.member_id = settings.member_id
        self.cluster_id = settings.cluster_id
        self._waiters = Waiters()
        # Pending proposals = parked proposers, read when /metrics is scraped (the series is per process, as
        # the server is; the last server constructed owns it).
        metrics.PROPOSALS_PENDING.set_function(self._waiters.__len__)
        self._work = trio.Event()
        self._next_request_id = 0
        self._started = trio.Event()
        self.alarms = Alarms()
        self._quota = Quota(settings.quota_backend_bytes, self.alarms)
        self.backend: Backend | None = None
        self.store: KVStore | None = None
        self.wal: WAL | None = None
        self.log: LocalLog | None = None
        self.watch_hub: WatchHub | None = None
        self.lessor = Lessor(
            minimum_ttl(settings.election_timeout_ms, settings.heartbeat_interval_ms), trio.current_time
        )
        self._revoking: dict[int, float] = {}
        self._id_prefix = (settings.member_id & 0xFFFF) << 48
        self._id_suffix = (int(time.time() * 1000) & ((1 << 40) - 1)) << 8
        self._sync_needed = trio.Event()
        self._backend_committed = trio.Event()  # set by each commit that wrote something
        self._batch_open = trio.Event()  # set when an apply batch leaves the batch transaction open
        self._backend_bytes = 0  # the backend's file size as of the last commit (it grows only then)
        # The quota cost of the writes admitted since that commit: the file does not grow until the batch
        # transaction commits, so without it a burst inside one batch interval would pass the quota unseen.
        self._uncommitted_cost = 0
        # Held by whatever runs on the backend off the event loop (its sync; a defragmentation's copy).
        self._backend_lock = trio.Lock()
        self._applies_resumed: trio.Event | None = None  # an unset Event while a defragmentation holds applies
        self._failure: str | None = None  # why the member cannot write any more (it is stopping)
        self.durable_index = 0  # the highest index a completed backend sync covers
        self.v2store: V2Store | None = None  # with --enable-v2, from start-up on

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Locks the data (and WAL) directory, opens storage, replays the WAL, then runs the Ready loop until
        cancelled. Raises DataDirLockedError, having read and written nothing, if another member holds the lock."""
        s = self.settings
        with data_dir.locked(s.data_dir, *([s.wal_dir] if s.wal_dir else [])):
            data_dir.make_durable_dirs(s.member_dir, s.backend_path, s.wal_path)
            await self._run_locked(task_status)

    async def _run_locked(self, task_status: trio.TaskStatus[None]) -> None:
        s = self.settings
        Backend.discard_interrupted_defragmentation(s.backend_path)
        self.backend = Backend(s.backend_path, map_size=s.backend_map_size)
        try:
            self.store = KVStore(self.backend, self.lessor, self.alarms)
            if s.enable_v2:  # the v2 store as of the consistent index; the WAL replay below brings it up to date
                self.v2store = register_member(s, time.time_ns(), self.store.saved_v2_state())
                self.store.v2_applier = lambda request, index: self.v2store.apply(request, index, time.time_ns())
                self.store.v2_state = lambda: state_if_changed(self.v2store)
            try:
                self.wal, replay = await WAL.open(
                    s.wal_path,
                    after_index=self.store.consistent_index,
                    segment_bytes=s.wal_segment_bytes,
                    max_segments=s.max_wals,
                )
            except (WalCorruptError, WalGapError) as exc:
                repair = " (files unchanged; `etcdx wal repair` cuts the log there)"
                reason = f"start-up refused: {exc}{repair if isinstance(exc, WalCorruptError) else ''}"
                raise self._stop(reason) from exc
            try:
                if replay.torn_tail is not None:
                    torn = replay.torn_tail
                    log.warning(
                        "wal: cut a torn tail (a write the last stop interrupted)",
                        segment=torn.path,
                        offset=torn.offset,
                        bytes=torn.length,
                        copy=torn.copy_path,
                    )
                self._replay(replay.entries)
                self._backend_bytes = self.backend.size_bytes
                self.store.take_events()  # nobody watched the replay
                self.watch_hub = WatchHub(self.store)
                self.lessor.promote(extend=s.election_timeout_ms / 1000)
                last_term = replay.entries[-1].term if replay.entries else 0
                self.log = LocalLog(replay.hard_state, replay.last_index, last_term)
                log.info(
                    "server started",
                    member_id=f"{self.member_id:x}",
                    cluster_id=f"{self.cluster_id:x}",
                    replayed_entries=len(replay.entries),
                    wal_segments_read=replay.segments_read,
                    wal_segments=self.wal.segment_count,
                    revision=self.store.current_revision,
                    term=self.log.term,
                )
                metrics.publish_identity(self.member_id)
                self._started.set()
                task_status.started()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch_sync_loop)
                    nursery.start_soon(self._backend_sync_loop)
                    nursery.start_soon(self._backend_commit_loop)
                    nursery.start_soon(self._watch_progress_loop)
                    nursery.start_soon(self._lease_expiry_loop, nursery)
                    await self._ready_loop()
            finally:
                with trio.CancelScope(shield=True):
                    await self.wal.close()
        finally:
            with trio.CancelScope(shield=True):
                async with self._backend_lock:  # a defragmentation's copy may still run in its thread
                    if self._failure is None:
                        if self.store is not None:
                            self.store.commit()
                        self.backend.close()
                    else:
                        with contextlib.suppress(Exception):  # stopping already; the first failure is reported
                            if self.store is not None:
                                self.store.abort()
                            self.backend.close()

    def _stop(self, reason: str) -> MemberStopped:
        """Marks the member as unable to write (/health turns false) and returns the error that stops it."""
        if self._failure is None:
            self._failure = reason
        return MemberStopped(reason)

    @property
    def write_failure(self) -> str | None:
        """Why the member cannot write (its WAL or backend failed), or None while it can."""
        if self._failure is None and self.wal is not None and self.wal.failure is not None:
            return f"wal: cannot write the log: {self.wal.failure!r}"
        return self._failure

    def _replay(self, entries: list[Entry]) -> None:
        with self.store.apply_batch():
            for entry in entries:
                self._apply_entry(entry)
        self.store.commit()

    # -- the Ready loop ----------------------------------------------------------------------

    async def _ready_loop(self) -> None:
        node = self.log
        while True:
            if not node.has_ready():
                await self._work.wait()
                self._work = trio.Event()
                continue
            rd = node.ready()
            persist = bool(rd.entries) or rd.hard_state is not None
            if persist:
                self.wal.append(rd.entries, rd.hard_state)
                synced = self.wal.start_sync()
            # Pipelined: the committed entries (persisted by an earlier Ready) are applied while this Ready's
            # entries are fsynced; apply order stays log order, and each waiter is resolved by its own apply.
            if rd.committed:
                # Again after each wake-up: the next defragmentation may already hold the backend.
                while self._applies_resumed is not None:
                    await self._applies_resumed.wait()
                self._apply_committed(rd.committed)
            if persist:
                try:
                    await self.wal.wait_synced(synced)
                except WalWriteError as exc:
                    raise self._stop(f"wal: cannot write the log, stopping: {exc.__cause__!r}") from exc
            node.advance(rd)

    def _apply_committed(self, entries: list[Entry]) -> None:
        results = []
        with self.store.apply_batch():
            for entry in entries:
                if entry.data:
                    results.append((entry.index, self._apply_entry(entry)))
        if self.store.uncommitted_entries >= self.settings.backend_batch_limit or self.store.holds_compaction:
            self._commit_backend()
        elif self.store.batch_open:
            self._batch_open.set()
        metrics.PROPOSALS_APPLIED.inc(len(entries))
        metrics.CURRENT_REVISION.set(self.store.current_revision)
        hub = self.watch_hub
        for revision, events in self.store.take_events():
            hub.notify(revision, events)
        if hub.unsynced_count:
            self._sync_needed.set()
        failed = 0
        resolve = self._waiters.resolve
        for index, result in results:
            if isinstance(result, errors.EtcdError):
                failed += 1
            resolve(index, result)
        # Counted per batch rather than per caller (one lock each): a proposal whose caller gave up counts too.
        if failed:
            metrics.PROPOSALS_FAILED.inc(failed)
        if len(results) > failed:
            metrics.PROPOSALS_COMMITTED.inc(len(results) - failed)

    def _apply_entry(self, entry: Entry) -> Any:
        """The entry's answer; an entry the store could not apply is logged here, once, and answered with
        its ApplyFailed error (the member goes on: every member applies the same entry the same way)."""
        if not entry.data:
            return None
        result = self.store.apply_data(entry.index, entry.data)
        if isinstance(result, ApplyFailed):
            cause = result.cause
            log.error(
                "failed to apply request",
                index=entry.index,
                error=f"{type(cause).__name__}: {cause}",
                request_bytes=len(entry.data),
                stack="".join(traceback.format_exception(cause)),
            )
        return result

    async def _backend_commit_loop(self) -> None:
        """Commits the batch transaction --backend-batch-interval after the apply batch that opened it (a
        commit for the batch limit or a defragmentation in between only makes the next one come early)."""
        while True:
            await self._batch_open.wait()
            await trio.sleep(self.settings.backend_batch_interval)
            self._batch_open = trio.Event()
            self._commit_backend()

    def _commit_backend(self) -> None:
        """Commits the batch transaction on the event loop (blocking for its fdatasync); a failed commit stops
        the member."""
        if not self.store.batch_open:
            return
        try:
            self.store.commit()
        except self.backend.storage_errors as exc:
            raise self._stop(f"backend: commit failed, stopping: {exc!r}") from exc
        self._backend_bytes = self.backend.size_bytes
        self._uncommitted_cost = 0
        self._backend_committed.set()

    async def _backend_sync_loop(self) -> None:
        """Flushes the backend to disk off the event loop, BACKEND_SYNC_INTERVAL after a commit, and
        releases the WAL below what a completed flush covers (see the module docstring). A failed flush stops
        the member."""
        s = self.settings
        released_at = 0
        release_below = 1  # entries below it are covered by a durable backend state and the catch-up margin
        while True:
            await self._backend_committed.wait()
            # One sync for the commits of an interval: only WAL release waits for it (a commit's own fdatasync
            # already keeps the file consistent), and a commit left unsynced that long is what a backend without
            # that fdatasync would lose (the planted fault of tests/powercut).
            await trio.sleep(BACKEND_SYNC_INTERVAL)
            self._backend_committed = trio.Event()
            # Commits run on this loop: this index was committed before the sync below starts, so a completed
            # sync makes it durable (entries applied but not committed yet are not counted).
            index = self.store.committed_index
            try:
                async with self._backend_lock:
                    await trio.to_thread.run_sync(self.backend.sync)
            except Exception as exc:
                raise self._stop(f"backend: sync failed, stopping: {exc!r}") from exc
            self.durable_index = index
            if index - released_at >= s.snapshot_count:
                released_at = index
                release_below = max(index - s.snapshot_catchup_entries + 1, 1)
            # Each sync, not only at a new release point: segments started since may push the count over
            # --max-wals, and those wholly below the point go then (as etcd purges on a timer).
            if release_below > 1:
                await self._release_wal(release_below)

    async def _release_wal(self, below: int) -> None:
        """Releases the WAL below ``below`` (see the module docstring); logs what it removed."""
        try:
            removed = await self.wal.release_to(below)
        except OSError as exc:  # the log stays longer than needed; nothing is at risk
            log.warning("wal: could not remove released segments", error=repr(exc))
            return
        if removed:
            log.info(
                "wal: released segments",
                removed=len(removed),
                below_index=below,
                durable_index=self.durable_index,
                segments=self.wal.segment_count,
            )

    # -- watch upkeep -------------------------------------------------------------------------

    async def _watch_sync_loop(self) -> None:
        """Catches unsynced watchers up from history: when asked, and every 100 ms while any lag."""
        while True:
            with trio.move_on_after(0.1):
                await self._sync_needed.wait()
            self._sync_needed = trio.Event()
            if self.watch_hub.unsynced_count:
                self.watch_hub.sync()

    async def _watch_progress_loop(self) -> None:
        interval = self.settings.watch_progress_notify_interval
        while True:
            await trio.sleep(interval)
            self.watch_hub.progress(self.store.current_revision)

    # -- lease upkeep (the leader's) ----------------------------------------------------------

    async def _lease_expiry_loop(self, nursery: trio.Nursery) -> None:
        """Revokes expired leases through the log, as a client revoke would; retries after 3 s."""
        while True:
            await trio.sleep(LEASE_CHECK_INTERVAL)
            now = trio.current_time()
            for lease_id in self.lessor.expired(LEASE_REVOKES_PER_CHECK):
                if self._revoking.get(lease_id, 0.0) > now:
                    continue
                self._revoking[lease_id] = now + LEASE_REVOKE_RETRY
                nursery.start_soon(self._revoke_expired, lease_id)

    async def _revoke_expired(self, lease_id: int) -> None:
        try:
            await self.propose(InternalRequest(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=lease_id)))
        except errors.EtcdError:
            pass  # already revoked by a client; if it is still there, the next check retries it
        finally:
            self._revoking.pop(lease_id, None)

    def next_id(self) -> int:
        """etcd's ID generator: low 16 bits of the member ID, then a millisecond timestamp and a counter."""
        self._id_suffix += 1
        return (self._id_prefix | (self._id_suffix & ((1 << 48) - 1))) & ((1 << 63) - 1)

    async def lease_grant(self, request: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        if request.TTL > MAX_LEASE_TTL:
            raise errors.ERR_LEASE_TTL_TOO_LARGE
        if not request.ID:
            request.ID = self.next_id()
        return await self.propose(InternalRequest(lease_grant=request))

    async def defragment(self) -> None:
        """etcd's Defragment: rewrites the backend as a compact file and swaps it in under the running member.

        The copy is written off the event loop while reads go on being served from the live file; applies
        wait from before the copy starts until the compact file is in place (a write committed after the
        copy began would not be in it), and proposals queue in the log meanwhile. The swap itself runs
        on the event loop between two apply batches, so no read or write transaction is open across it.
        One defragmentation at a time; the backend sync waits for it.
        """
        async with self._backend_lock:
            self._applies_resumed = trio.Event()
            try:
                self._commit_backend()  # the copy reads the committed file
                copy_path = await trio.to_thread.run_sync(self.backend.write_compact_copy)
                self.backend.swap_in(copy_path)
            finally:
                self._applies_resumed.set()
                self._applies_resumed = None
        self._backend_bytes = self.backend.size_bytes
        log.info("finished defragment", db_size=self._backend_bytes)

    def request_watch_sync(self) -> None:
        self._sync_needed.set()

    # -- what the API layer calls ------------------------------------------------------------

    async def propose(self, request: InternalRequest) -> Any:
        """Replicates ``request`` through the log and returns the store's response for it.

        Raises the EtcdError the request failed with. Cancelling the caller does not withdraw the
        proposal: once proposed it will be applied; only the answer is lost.
        """
        result = self._answer(await self._waiters.wait(self._append_proposal(request)))
        if isinstance(result, errors.EtcdError):
            raise result
        return result

    def propose_nowait(self, request: InternalRequest, on_done: Callable[[Any], None]) -> None:
        """``propose`` for a caller that holds no task: returns at once (or raises, as ``propose`` does before
        proposing), and once the entry is applied ``on_done`` gets the response (header filled) or the
        EtcdError it failed with. ``on_done`` runs inside the apply loop and must not raise."""
        self._waiters.on_resolve(self._append_proposal(request), lambda result: on_done(self._answer(result)))

    def _answer(self, result: Any) -> Any:
        """A proposal's result as its proposer gets it: the response with its header filled, or the EtcdError."""
        if not isinstance(result, errors.EtcdError):
            self.fill_header(result.header)
        return result

    def _append_proposal(self, request: InternalRequest) -> int:
        """Numbers ``request``, appends it to the log and wakes the Ready loop; returns its log index.

        Admission (etcd's rule): refused with "too many requests" while the log is more than MAX_APPLY_BACKLOG
        entries ahead of apply. etcd 3.5 counts committed entries; its single member commits an entry as soon
        as it is appended (etcd-io/etcd#14370), so every accepted proposal counts there, as it does here with
        the log's last index (this log commits only after the fsync)."""
        if self.log.last_index - self.store.consistent_index > MAX_APPLY_BACKLOG:
            raise errors.ERR_TOO_MANY_REQUESTS
        self._next_request_id += 1
        request.id = self._next_request_id
        data = request.SerializeToString()
        if len(data) > self.settings.max_request_bytes:
            raise errors.ERR_REQUEST_TOO_LARGE
        index = self.log.propose(data)
        self._work.set()
        return index

    async def check_quota(self, cost: int) -> None:
        """Refuses a write of ``cost`` estimated bytes when the backend quota or a NOSPACE alarm forbids it.

        A write the quota itself refuses first raises this member's NOSPACE alarm through the log and waits
        for it to apply, as etcd does, so that once a client hears "database space exceeded" the alarm
        is listed (and survives a restart).
        """
        try:
            self._quota.check(cost, self._backend_bytes + self._uncommitted_cost)
        except QuotaExceeded:
            await self.propose(self._nospace_alarm())
            self._commit_backend()  # the batch the quota counted, on disk: Status's dbSize shows the full file
            raise
        self._uncommitted_cost += cost

    def check_quota_nowait(self, cost: int, on_refused: Callable[[errors.EtcdError], None]) -> bool:
        """``check_quota`` for a caller that holds no task: True if the write may go ahead. If not, raises the
        NOSPACE alarm's error at once when the alarm is already active; when the quota itself refuses, returns
        False and hands the error to ``on_refused`` once the alarm it raises has applied."""
        try:
            self._quota.check(cost, self._backend_bytes + self._uncommitted_cost)
        except QuotaExceeded:
            self.propose_nowait(self._nospace_alarm(), lambda _: self._refuse_for_space(on_refused))
            return False
        self._uncommitted_cost += cost
        return True

    def _refuse_for_space(self, on_refused: Callable[[errors.EtcdError], None]) -> None:
        self._commit_backend()  # as in check_quota
        on_refused(errors.ERR_NO_SPACE())

    def _nospace_alarm(self) -> InternalRequest:
        alarm = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=self.member_id, alarm=rpc_pb2.NOSPACE
        )
        return InternalRequest(alarm=alarm)

    def range(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """Serves a read from the applied state.

        With a single voter every acknowledged write is applied before its client hears back, so
        the applied state is already linearizable; serializable reads take the same path.
        """
        response = self.store.range(request)
        self.fill_header(response.header)
        return response

    def read_txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """Serves a read-only txn from the applied state without a log entry, as etcd serves it outside Raft
        (linearizable here for the reason ``range`` gives)."""
        response = self.store.read_txn(request)
        self.fill_header(response.header)
        return response

    def range_encoded(self, request: rpc_pb2.RangeRequest) -> bytes:
        """``range(request)`` as serialized RangeResponse bytes, encoded from the stored KeyValues where the
        store can (KVStore.range_encoded): the KV service's path, which sends the bytes as they are."""
        header = rpc_pb2.ResponseHeader()
        self.fill_identity(header)
        return self.store.range_encoded(request, header)

    def fill_header(self, header: rpc_pb2.ResponseHeader) -> None:
        self.fill_identity(header)
        if not header.revision:
            header.revision = self.store.current_revision

    def fill_identity(self, header: rpc_pb2.ResponseHeader) -> None:
        """The fields every response header carries: who answers, and in which term."""
        header.cluster_id = self.cluster_id
        header.member_id = self.member_id
        header.raft_term = self.log.term

    def header(self) -> rpc_pb2.ResponseHeader:
        header = rpc_pb2.ResponseHeader()
        self.fill_header(header)
        return header

    async def wait_started(self) -> None:
        await self._started.wait()

    @property
    def raft_term(self) -> int:
        return self.log.term

    @property
    def committed_index(self) -> int:
        return self.log.commit

    @property
    def applied_index(self) -> int:
        return self.store.consistent_index

    @property
    def leader_id(self) -> int:
        return self.member_id

    @property
    def current_revision(self) -> int:
        return self.store.current_revision

    @property
    def db_size_bytes(self) -> int:
        return self.backend.size_bytes

    @property
    def db_size_in_use_bytes(self) -> int:
        return self.backend.size_in_use_bytes

    # -- leases as clients see them (grant and revoke go through the log) ----------------------

    def renew_lease(self, lease_id: int) -> int:
        """A keep-alive: the granted TTL, or 0 for an unknown or already expired lease."""
        return self.lessor.renew(lease_id)

    def lease_time_to_live(self, request: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse:
        response = rpc_pb2.LeaseTimeToLiveResponse(header=self.header(), ID=request.ID)
        lease = self.lessor.leases.get(request.ID)
        if lease is None:
            response.TTL = -1
            return response
        response.TTL = self.lessor.remaining(request.ID)
        response.grantedTTL = lease.ttl
        if request.keys:
            response.keys.extend(sorted(lease.keys))
        return response

    def lease_ids(self) -> list[int]:
        return sorted(self.lessor.leases)

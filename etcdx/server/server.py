"""EtcdServer: the shell of the Raft core (etcdx.raft) on trio. It owns the Ready loop (propose -> WAL ->
commit -> apply), the tick, and serves reads.

The member is a Raft cluster of one voter (the cluster issue adds peers and a transport). Ready loop, per
the contract of etcdx.raft.Ready: take a Ready; follow its soft state (leadership); write its entries and
HardState to the WAL and the in-memory raft storage and start their fsync; apply the committed entries (all
already durable) while that fsync runs; serve the read states; wait for the fsync; on_persisted. Group
commit falls out of it: proposals made while one fsync runs are persisted together by the next. A Ready with
nothing to overlap (one proposer waiting, nothing to send, apply or read: a lone client's write) is fsynced
inline on the event loop instead (``_alone``, WAL.sync_inline): the same fsync before on_persisted, without
the two thread hand-offs and the scheduler pass that cost a lone write about 100 us.

Durability contract: a proposal's waiter is resolved only after its entry was fsynced to the WAL (the core
counts its own acknowledgement only in on_persisted) and applied to the store; a Ready's entries and HardState
are durable before on_persisted and before its persisted_messages (acknowledgements, votes) are sent, whether
the fsync ran on the WAL's thread or inline (tests/unit/test_server_inline_fsync.py checks both). Waiters are
keyed by the request id each proposal carries (InternalRequest.id), never by log index: a new leader may replace
an uncommitted entry at an index with another. Linearizable reads go through ReadIndex (read_index.py).
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

Snapshots: a follower the leader's compacted log cannot reach is sent the leader's backend image
(snapshot_images.py) and installs it before the entries that follow (snapshot_install.py).

WAL release: the backend is the snapshot. Once --snapshot-count entries were applied since the last
release point, and a backend sync that started after they were committed has completed, the release point
moves to that index minus --experimental-snapshot-catchup-entries (only committed entries count: the sync
covers what was committed when it started); after every backend sync the WAL removes
its oldest segments wholly below the point while more than --max-wals remain (0: it keeps them all).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import random
import ssl
import time
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from google.protobuf.message import Message

from etcdx import errors
from etcdx._native.protowire import read_varint
from etcdx.lease.lessor import MAX_LEASE_TTL, Lessor, minimum_ttl
from etcdx.log import get_logger
from etcdx.mvcc import rows
from etcdx.mvcc.alarms import Alarms
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.kvstore import KVStore
from etcdx.mvcc.tables import TableView
from etcdx.mvcc.watch import WatchHub
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.peer import PeerTransport
from etcdx.peer.join import JoinError, fetch_members
from etcdx.raft import (
    ConfChange,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    ProposalDroppedError,
    RawNode,
    Ready,
    Role,
    confchange,
)
from etcdx.server import (
    auth_tokens,
    caller,
    corrupt_check,
    data_dir,
    identity,
    lease_forward,
    metrics,
    metrics_scrape,
    proposal_entry,
    snapshot_install,
)
from etcdx.server.apply import Applier, ApplyFailed
from etcdx.server.auto_compaction import schedule_for
from etcdx.server.bootstrap_log import bootstrap_entries, cluster_version_request
from etcdx.server.heartbeat_watch import HeartbeatWatch
from etcdx.server.ids import cluster_id
from etcdx.server.membership import Change, ChangeKind, Membership
from etcdx.server.quota import Quota, QuotaExceeded
from etcdx.server.raft_storage import boot_storage, from_wal_entry, to_wal_hard_state
from etcdx.server.read_index import ReadIndexBatches
from etcdx.server.request_timeout import ProposalDeadlines, request_timeout, timeout_error
from etcdx.server.settings import ServerSettings
from etcdx.server.snapshot_images import SnapshotImages
from etcdx.server.waiters import Waiters
from etcdx.v2store.bootstrap import register_member, state_if_changed
from etcdx.v2store.store import V2Store
from etcdx.wal.wal import WAL, WalCorruptError, WalGapError, WalReplay, WalWriteError

log = get_logger("etcdx.server")

LEASE_CHECK_INTERVAL = 0.5
LEASE_REVOKES_PER_CHECK = 500  # etcd revokes at most 1000 expired leases a second
LEASE_REVOKE_RETRY = 3.0
LEASE_CHECKPOINTS_PER_PROPOSAL = 1000  # etcd's maxLeaseCheckpointBatchSize
# A commit leaves its meta page unsynced (MDB_NOMETASYNC, see Backend); a backend sync this long after a commit
# makes it durable, so that the WAL can be released below it.
BACKEND_SYNC_INTERVAL = 0.1
COMPACTION_BATCH_PAUSE = 0.01  # between two batches of a compaction's deletions (etcd 3.5's fixed pause)
# etcd's maxGapBetweenApplyAndCommitIndex: a proposal is refused with "too many requests" while more entries
# than this wait to be applied.
MAX_APPLY_BACKLOG = 5000
# etcd's readIndexRetryTime: a ReadIndex not answered in this long is issued again.
READ_INDEX_RETRY = 0.5
TOKEN_PURGE_INTERVAL = 1.0
REMOVED_REASON = "the member has been permanently removed from the cluster"
REMOVED_STOP_DELAY = 1.0  # etcd's stopWithDelay for a member that applied its own removal
CONF_CHANGE_RETRY = 0.5  # a membership change not applied this long after its proposal is proposed again


def _leading_request_id(data: bytes) -> int:
    """The request id of an InternalRequest that does not parse as a whole, read from its first field (the id
    is field 1 and is serialized first), so its proposer still gets the entry's answer; 0 if it is not there."""
    if data[:1] != b"\x08":
        return 0
    try:
        return read_varint(data, 1)[0]
    except ValueError:
        return 0


_CHANGE_LOGS = {
    ChangeKind.ADD: "added member",
    ChangeKind.REMOVE: "removed member",
    ChangeKind.PROMOTE: "promote member",
    ChangeKind.UPDATE_PEER_URLS: "updated member",
    ChangeKind.PUBLISH_ATTRIBUTES: "updated member attributes",
}


PROMOTE_MEMBER = "member_promote"  # the peer call that forwards a MemberPromote to the leader


def _nothing() -> None:
    pass


def _publish_nowhere(index: int, alone: bool) -> None:
    pass


def _conf_change_error(reason: str) -> errors.EtcdError:
    """etcd's error for a membership change the Raft core refused to propose (confchange.refusal's reasons)."""
    if "learner not ready" in reason:
        return errors.ERR_LEARNER_NOT_READY()
    if "member not found" in reason:
        return errors.ERR_MEMBER_NOT_FOUND()
    if "already exists" in reason:
        return errors.ERR_MEMBER_EXIST()
    if "no leader" in reason:
        return errors.ERR_NO_LEADER()
    return errors.ERR_UNHEALTHY()


class MemberStopped(Exception):
    """The member cannot go on without risking acknowledged data; the message says why, in one line."""


class MemberRemoved(MemberStopped):
    """The member was removed from its cluster: it stops, and its data dir must be removed (etcd exits 0)."""


class EtcdServer:
    """One member. Public methods are what the API layer calls; nothing here knows about gRPC."""

    def __init__(self, settings: ServerSettings, peer_client_tls: ssl.SSLContext | None = None) -> None:
        """``peer_client_tls``: the TLS this member dials https:// peers with (None: plain http://)."""
        self.settings = settings
        self._peer_client_tls = peer_client_tls
        self.member_id = settings.member_id
        self.cluster_id = settings.cluster_id
        self._waiters = Waiters()
        self._heartbeats = HeartbeatWatch(settings.heartbeat_interval_ms / 1000)
        self._work = trio.Event()
        self._started = trio.Event()
        self._reads = ReadIndexBatches()
        self._proposals: list[tuple[int, bytes]] = []  # (request id, InternalRequest bytes) for the next Ready
        # Called by the Ready loop after each step that may have answered requests (applies, read states),
        # before it waits: the API layer sends the answers then, in one write per connection, rather than at
        # its writers' next turn (grpc_server.flush_deferred_replies). Must not raise or block.
        self.flush_replies: Callable[[], None] = _nothing
        # Called with the applied index and whether this member leads alone (publish_applied_state) after each apply
        # step, before any request that step applied is answered, and when its role changes, before it sends
        # anything (the read workers' mark, etcdx/worker/applied_mark.py). Must not raise or block.
        self.publish_applied: Callable[[int, bool], None] = _publish_nowhere
        self._log_last_index = 0  # the core's last log index, updated whenever the log changes (for admission)
        self._hard_state_unwritten = None  # a commit-only HardState not in the WAL yet (see _persist)
        self._read_issued = trio.Event()  # set when a ReadIndex goes out (the retry timer starts)
        self._read_issued_at = 0.0  # when the ReadIndex in flight was first issued (its request timeout runs)
        self.request_timeout = request_timeout(settings.election_timeout_ms)
        self._deadlines = ProposalDeadlines(self.request_timeout)
        self._leader_elected_at: float | None = None  # when this member last became leader
        self._leader_id = 0
        self._is_leader = False
        self._caught_up = trio.Event()  # set once, when this member leads and has applied all it committed
        self.alarms = Alarms()
        self._quota = Quota(settings.quota_backend_bytes, self.alarms)
        self.backend: Backend | None = None
        self.store: KVStore | None = None
        self.applier: Applier | None = None
        self.wal: WAL | None = None
        self.node: RawNode | None = None
        # The membership: the stored one (the initial cluster for a new member), then the applied changes.
        self.membership = Membership([], set())
        # Whether this member is a learner in the membership it has applied (etcd's Status isLearner): a plain
        # attribute, as every client call tests it (learner_gate.py); note_membership keeps it current.
        self.is_learner = False
        self._boot_conf = ConfState()
        self.transport: PeerTransport | None = None
        self._transport_ready = trio.Event()
        self._removed_from_cluster = trio.Event()
        self.watch_hub: WatchHub | None = None
        self.lessor = Lessor(
            minimum_ttl(settings.election_timeout_ms, settings.heartbeat_interval_ms),
            trio.current_time,
            settings.lease_checkpoint_interval if settings.lease_checkpoint else None,
        )
        self._revoking: dict[int, float] = {}
        self._id_prefix = (settings.member_id & 0xFFFF) << 48
        self._id_suffix = (int(time.time() * 1000) & ((1 << 40) - 1)) << 8
        self._request_suffix = self._id_suffix  # request ids: the same generator's scheme, its own counter
        self._sync_needed = trio.Event()
        self._backend_committed = trio.Event()  # set by each commit that wrote something
        self._batch_open = trio.Event()  # set when an apply batch leaves the batch transaction open
        self._backend_bytes = 0  # the backend's file size as of the last commit (it grows only then)
        # The quota cost of the writes admitted since that commit: the file does not grow until the batch
        # transaction commits, so without it a burst inside one batch interval would pass the quota unseen.
        self._uncommitted_cost = 0
        # Held by whatever runs on the backend off the event loop (its sync; a defragmentation's copy).
        self._backend_lock = trio.Lock()
        self._compaction_work = trio.Event()  # set when a compaction left deletions to later batches
        self._applies_resumed: trio.Event | None = None  # an unset Event while a defragmentation holds applies
        self._failure: str | None = None  # why the member cannot write any more (it is stopping)
        self.durable_index = 0  # the highest index a completed backend sync covers
        self.v2store: V2Store | None = None  # with --enable-v2, from start-up on
        self.tokens = auth_tokens.token_provider(settings.auth_token, settings.auth_token_ttl)
        self.auth = None  # the AuthStore, once the backend is open (the applier's)

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
        try:
            snapshot_install.finish_interrupted(s.backend_path, s.wal_path)
        except snapshot_install.SnapshotInstallError as exc:
            raise self._stop(str(exc)) from exc
        self.backend = Backend(s.backend_path, map_size=s.backend_map_size, fsync=not s.unsafe_no_fsync)
        try:
            await self._bootstrap_defrag()
            self.store = _restore_store(self.backend, self.lessor)
            self.store.compaction_batch_limit = s.compaction_batch_limit
            self.applier = Applier(self.store, self.lessor, self.alarms, tokens=self.tokens, now=time.time)
            self.applier.persist_checkpoints = s.lease_checkpoint_persist
            self.auth = self.applier.auth
            joined = await self._join_cluster()
            self.membership = self._load_membership(joined)
            self.note_membership()
            if s.enable_v2:  # the v2 store as of the consistent index; the WAL replay below brings it up to date
                self.v2store = register_member(s, time.time_ns(), self.store.saved_v2_state())
                self.applier.v2_applier = lambda request, index: self.v2store.apply(request, index, time.time_ns())
                self.store.v2_state = lambda: state_if_changed(self.v2store)
            try:
                self.wal, replay = await WAL.open(
                    s.wal_path,
                    after_index=self.store.consistent_index,
                    segment_bytes=s.wal_segment_bytes,
                    max_segments=s.max_wals,
                )
                self.wal.fsync = not s.unsafe_no_fsync
            except (WalCorruptError, WalGapError) as exc:
                repair = " (files unchanged; `etcdx wal repair` cuts the log there)"
                reason = f"start-up refused: {exc}{repair if isinstance(exc, WalCorruptError) else ''}"
                raise self._stop(reason) from exc
            try:
                starts_new = self._starts_new_cluster(joined, replay)
                if starts_new:
                    replay = await self._write_bootstrap_log(replay)
                if replay.torn_tail is not None:
                    torn = replay.torn_tail
                    log.warning(
                        "wal: cut a torn tail (a write the last stop interrupted)",
                        segment=torn.path,
                        offset=torn.offset,
                        bytes=torn.length,
                        copy=torn.copy_path,
                    )
                self._replay(replay.entries, replay.hard_state.commit if replay.hard_state else 0)
                if s.force_new_cluster and not starts_new and self.store.consistent_index:
                    replay = await self._restart_standalone(replay)
                self._backend_bytes = self.backend.size_bytes
                self.store.take_events()  # nobody watched the replay
                self.watch_hub = WatchHub(self.store)
                self.node = self._boot_node(replay)
                log.info(
                    "server started",
                    member_id=f"{self.member_id:x}",
                    cluster_id=f"{self.cluster_id:x}",
                    replayed_entries=len(replay.entries),
                    wal_segments_read=replay.segments_read,
                    wal_segments=self.wal.segment_count,
                    revision=self.store.current_revision,
                    term=self.raft_term,
                    pre_vote=s.pre_vote,
                    initial_election_tick_advance=s.initial_election_tick_advance,
                )
                # /metrics reads this member (pending proposals = parked proposers); the WAL reports its fsyncs.
                metrics_scrape.watch(self, pending=self._waiters.__len__)
                self.wal.observe_fsync = metrics.WAL_FSYNC_SECONDS.observe
                async with trio.open_nursery() as nursery:
                    # Always a transport, even alone: a member added later is reached through it.
                    peers = {m.ID: list(m.peerURLs) for m in self.members if self.member_id != m.ID}
                    self.transport = PeerTransport(
                        self.member_id,
                        self.cluster_id,
                        peers,
                        on_message=self._on_peer_message,
                        on_unreachable=self._on_peer_unreachable,
                        on_snapshot_status=self._on_snapshot_status,
                        client_tls=self._peer_client_tls,
                        on_call=self._on_peer_call,
                        removed=self.membership.removed,
                        on_removed=self._on_removed,
                        members_answer=self._members_answer,
                    )
                    await nursery.start(self.transport.run)
                    if peers and s.initial_corrupt_check:  # before this member serves peers or clients, as etcd's
                        try:
                            await corrupt_check.initial_check(self)
                        except corrupt_check.DataInconsistency as exc:
                            log.error("checkInitialHashKV failed", error=str(exc))
                            raise self._stop(str(exc)) from exc
                    self._transport_ready.set()
                    nursery.start_soon(self._ready_loop)
                    nursery.start_soon(self._snapshot_images.run)
                    nursery.start_soon(self._tick_loop)
                    nursery.start_soon(self._read_retry_loop)
                    nursery.start_soon(self._proposal_timeout_loop)
                    if self.node.raft.tracker.conf.voters == {self.member_id} and s.initial_election_tick_advance:
                        # A single voter elects itself at once (etcd fast-forwards its first election the
                        # same way, with --initial-election-tick-advance); with peers (or without the flag)
                        # the election timeout runs first, as etcd's.
                        self.node.campaign()
                        self._work.set()
                    # Clients are served once a leader is known and everything it committed is applied here.
                    await self._caught_up.wait()
                    nursery.start_soon(self._stop_when_removed)
                    await self._publish_attributes()  # as etcd, a member serves once it published them
                    await self._record_cluster_version()  # before serving: a new cluster's indexes are etcd's
                    self._started.set()
                    task_status.started()
                    nursery.start_soon(self._watch_sync_loop)
                    nursery.start_soon(self._backend_sync_loop)
                    nursery.start_soon(self._backend_commit_loop)
                    nursery.start_soon(self._watch_progress_loop)
                    nursery.start_soon(self._lease_expiry_loop, nursery)
                    nursery.start_soon(self._token_purge_loop)
                    nursery.start_soon(self._cluster_version_loop)
                    nursery.start_soon(self._compaction_batches_loop)
                    if s.auto_compaction_retention > 0:
                        nursery.start_soon(self._auto_compaction_loop)
                    if s.lease_checkpoint:
                        nursery.start_soon(self._lease_checkpoint_loop)
                    if s.corrupt_check_time > 0 and self.transport is not None:
                        nursery.start_soon(corrupt_check.monitor, self, s.corrupt_check_time)
            finally:
                self._reads.fail_all(errors.ERR_STOPPED())  # reads parked on a ReadIndex get an answer
                if self._hard_state_unwritten is not None and self._failure is None:
                    self.wal.append([], to_wal_hard_state(self._hard_state_unwritten))
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

    async def _bootstrap_defrag(self) -> None:
        """--experimental-bootstrap-defrag-threshold-megabytes: defragments the backend before anything reads
        it when its free pages reach the threshold (0: never)."""
        threshold = self.settings.bootstrap_defrag_threshold_bytes
        free = self.backend.size_bytes - self.backend.size_in_use_bytes
        if threshold <= 0 or free < threshold:
            return
        before = self.backend.size_bytes
        copy_path = await trio.to_thread.run_sync(self.backend.write_compact_copy)
        self.backend.swap_in(copy_path)
        log.info("bootstrap defragmentation", db_size_before=before, db_size_after=self.backend.size_bytes)

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

    @property
    def members(self) -> list[rpc_pb2.Member]:
        """The members as applied here, by id."""
        return self.membership.listed()

    async def _join_cluster(self) -> rpc_pb2.MemberListResponse | None:
        """With --initial-cluster-state existing and an empty data dir: the running cluster's membership, asked
        of the other members' peer URLs (etcd's GetClusterFromRemotePeers); None otherwise."""
        if self.settings.initial_cluster_state != "existing" or self.store.consistent_index:
            return None
        with self.backend.begin_read() as view:
            if rows.members(view):
                return None
        own = set(self.settings.peer_urls)
        urls = [u for _, _, peer_urls in self.settings.initial_members for u in peer_urls if u not in own]
        try:
            joined = await fetch_members(urls, self._peer_client_tls)
        except JoinError as exc:
            raise self._stop(f"cannot join the cluster: {exc}") from exc
        mine = [m for m in joined.members if sorted(m.peerURLs) == sorted(own)]
        if len(mine) != 1:
            raise self._stop(
                "cannot join the cluster: no member there has this member's peer URLs "
                f"{sorted(own)} (add it first: etcdctl member add)"
            )
        self.member_id, self.cluster_id = mine[0].ID, joined.header.cluster_id
        self._id_prefix = (self.member_id & 0xFFFF) << 48
        log.info("joining the cluster", member_id=f"{self.member_id:x}", cluster_id=f"{self.cluster_id:x}")
        return joined

    def _load_membership(self, joined: rpc_pb2.MemberListResponse | None = None) -> Membership:
        """The cluster's members as the backend holds them (a restart ignores the --initial-* flags, as etcd's
        does; `etcdx snapshot restore` writes them too). A new member stores its initial cluster (or, joining,
        the running cluster's membership) first; a data dir from before the membership was stored uses the
        flags. Sets the membership the core starts with."""
        with self.backend.begin_read() as view:
            stored = [rpc_pb2.Member.FromString(value) for _, value in rows.members(view)]
            removed = Membership.load_removed(view)
        found = identity.read(self.settings.member_dir)
        if not stored:
            stored = (
                list(joined.members)
                if joined is not None
                else [
                    rpc_pb2.Member(ID=member_id, name=name, peerURLs=list(urls))
                    for member_id, name, urls in self.settings.initial_members
                ]
            )
            if self.store.consistent_index == 0:
                identity.write(self.settings.member_dir, self.member_id, self.cluster_id)
                with self.backend.begin_write() as txn:
                    for member in stored:
                        rows.put_member(txn, member.ID, member.SerializeToString())
        ids = [m.ID for m in stored]
        if found is not None:
            if found[0] != self.member_id:
                log.warning(
                    "the flags give this member another ID than its data dir; keeping the data dir's",
                    flags_member_id=f"{self.member_id:x}",
                    member_id=f"{found[0]:x}",
                )
            self.member_id, self.cluster_id = found
            self._id_prefix = (self.member_id & 0xFFFF) << 48
        elif self.member_id not in ids:
            # The flags give another ID (the peer URLs changed): the data dir's identity wins, as etcd takes its
            # member ID from its WAL and ignores the --initial-* flags on a restart.
            mine = [m for m in stored if m.name == self.settings.name]
            if len(mine) != 1:
                names = ", ".join(f"{m.name}={m.ID:x}" for m in stored)
                raise self._stop(
                    f"start-up refused: no member named {self.settings.name!r} in this data dir's cluster ({names})"
                )
            log.warning(
                "the flags give this member another ID than its data dir; keeping the data dir's",
                flags_member_id=f"{self.member_id:x}",
                member_id=f"{mine[0].ID:x}",
            )
            self.member_id, self.cluster_id = mine[0].ID, cluster_id(ids)
            self._id_prefix = (self.member_id & 0xFFFF) << 48
        self._boot_conf = ConfState(
            voters=frozenset(m.ID for m in stored if not m.isLearner),
            learners=frozenset(m.ID for m in stored if m.isLearner),
        )
        return Membership(stored, removed)

    def _starts_new_cluster(self, joined: rpc_pb2.MemberListResponse | None, replay: WalReplay) -> bool:
        """Whether this member bootstraps a new cluster: --initial-cluster-state new, nothing applied and
        nothing in the WAL (a restart, a restored snapshot or a joining member starts from what it has)."""
        return (
            joined is None
            and self.settings.initial_cluster_state == "new"
            and not self.store.consistent_index
            and replay.hard_state is None
            and replay.snapshot is None
            and not replay.entries
            and bool(self.members)
        )

    async def _write_bootstrap_log(self, replay: WalReplay) -> WalReplay:
        """Writes etcd's bootstrap entries (bootstrap_log.py) to the empty WAL, synced; the replay holding them."""
        entries, hard_state = bootstrap_entries([m.ID for m in self.members])
        self.wal.append(entries, hard_state)
        await self.wal.sync()
        return dataclasses.replace(replay, hard_state=hard_state, entries=entries, last_index=len(entries))

    async def _restart_standalone(self, replay: WalReplay) -> WalReplay:
        """--force-new-cluster on a member with data (etcd's restartAsStandaloneNode): the entries past the
        commit index are dropped, every other member is removed (its id refused from now on), and the log
        restarts at the applied index with this member as the only voter; the data, the member id and the
        cluster id stay. A crash part way is finished by starting with the flag again (the membership is written
        first, then the WAL's snapshot record at the applied index that supersedes the older entries)."""
        applied, term = self.store.consistent_index, self.store.consistent_term
        dropped = [e for e in replay.entries if e.index > applied]
        if dropped:
            log.info(
                "discarding uncommitted WAL entries",
                entry_index=dropped[0].index,
                commit_index_from_wal=applied,
                number_of_discarded_entries=len(dropped),
            )
        with self.store.apply_batch():
            for member in self.members:
                if self.member_id != member.ID:
                    self.membership.apply(Change(ChangeKind.REMOVE, 0, member), self.store.batch)
        self.store.commit()
        self.note_membership()
        previous = replay.hard_state or to_wal_hard_state(HardState())
        hard_state = to_wal_hard_state(HardState(term=max(term, previous.term), vote=previous.vote, commit=applied))
        self.wal.append_snapshot(applied, term, hard_state)
        await self.wal.sync()
        await self.wal.drop_before_snapshot()
        self._boot_conf = ConfState(voters=frozenset({self.member_id}))
        log.info(
            "forcing restart member",
            cluster_id=f"{self.cluster_id:x}",
            local_member_id=f"{self.member_id:x}",
            commit_index=applied,
        )
        return dataclasses.replace(replay, hard_state=hard_state, entries=[], last_index=applied)

    def _replay(self, entries: list, commit: int) -> None:
        """Re-applies the WAL's entries past the backend's consistent index up to the HardState's commit; the
        core hands out the rest once it commits them (an uncommitted entry may be replaced by a leader).
        A commit-only HardState is written lazily, so entries applied before a crash can lie past it: they
        are applied again before the member serves (see ``_run_locked``)."""
        committed = [from_wal_entry(e) for e in entries if e.index <= commit]
        with self.store.apply_batch():
            self._apply_entries(committed)
        self.store.commit()

    def _boot_node(self, replay) -> RawNode:
        """The Raft core over what is on disk: the backend's applied point as the snapshot, then the WAL."""
        s = self.settings
        conf = self._boot_conf
        storage = boot_storage(
            applied_index=self.store.consistent_index,
            applied_term=self.store.consistent_term,
            conf_state=conf,
            hard_state=replay.hard_state,
            entries=replay.entries,
        )
        self.raft_storage = storage
        self._snapshot_images = SnapshotImages(
            storage, self.committed_view, lambda: self.node.raft.tracker.conf, lambda: self._work.set()
        )
        cfg = Config(
            id=self.member_id,
            election_tick=max(2, s.election_timeout_ms // max(1, s.heartbeat_interval_ms)),
            heartbeat_tick=1,
            applied=self.store.consistent_index,
            pre_vote=s.pre_vote,
        )
        return RawNode(cfg, storage, random.Random(self.member_id ^ time.time_ns()))

    # -- the Ready loop ----------------------------------------------------------------------

    async def _ready_loop(self) -> None:
        node = self.node
        while True:
            if self._proposals:
                self._flush_proposals()  # the core appended them: the Ready below carries them (and the last index)
            if not node.has_ready():
                await self._work.wait()
                self._work = trio.Event()
                continue
            rd = node.ready()
            if rd.soft_state is not None:
                self._follow_soft_state(rd.soft_state.leader, rd.soft_state.role is Role.LEADER)
            if rd.messages:
                self._send(rd.messages)  # before the fsync: they assert nothing about this member's disk
            if rd.snapshot is not None:  # before this Ready's entries, which follow it (snapshot_install.py)
                try:
                    await snapshot_install.install(self, rd.snapshot, rd.hard_state or self.raft_storage.hard_state)
                except Exception as exc:  # a bad image, or a disk that fails: a crash here is safe (see there)
                    raise self._stop(f"raft: cannot install the leader's snapshot, stopping: {exc}") from exc
                self._backend_bytes = self.backend.size_bytes
                self.publish_applied_state()  # the workers' old file cannot reach the new mark: they reopen
                self._reads.on_applied(self.store.consistent_index)
            try:
                synced = self._persist(rd)
            except WalWriteError as exc:
                raise self._stop(f"wal: cannot write the log, stopping: {exc.__cause__!r}") from exc
            if rd.entries or rd.snapshot is not None:  # appended, replaced (a conflict) or reset by a snapshot
                self._log_last_index = node.raft.log.last_index()
            # Pipelined: the committed entries (persisted by an earlier Ready) are applied while this Ready's
            # entries are fsynced; apply order stays log order, and each waiter is resolved by its own apply.
            if rd.committed_entries:
                await self._apply_in_order(rd.committed_entries)
            for rs in rd.read_states:
                self._reads.on_read_state(rs.index, rs.context, self.store.consistent_index)
                self._issue_read_index()  # reads that arrived while that one was in flight
            self.flush_replies()
            if synced is not None:
                try:
                    await self.wal.wait_synced(synced)
                except WalWriteError as exc:
                    raise self._stop(f"wal: cannot write the log, stopping: {exc.__cause__!r}") from exc
            node.on_persisted(rd.number)
            if rd.persisted_messages:
                self._send(rd.persisted_messages)  # acknowledgements and votes: only once durable
            if rd.committed_entries:
                node.advance_apply(rd.committed_entries[-1].index)
            elif rd.snapshot is not None:
                node.advance_apply(rd.snapshot.index)
            # What this member's own acknowledgement just committed (all of a single voter's writes): applied
            # now, so a lone write is answered without waiting for another Ready. With proposals queued, they
            # are left to the next Ready instead, which carries them as committed_entries and applies them
            # while its own entries' fsync runs: the disk never idles while a batch is applied (group commit's
            # cycle is the longer of fsync and apply, not their sum).
            if not self._proposals and (committed := node.take_committed()):
                await self._apply_in_order(committed)
                node.advance_apply(committed[-1].index)
                self.flush_replies()
            if not self._caught_up.is_set() and self._leader_id and self._applied_all_committed():
                self._caught_up.set()

    async def _apply_in_order(self, entries: list[Entry]) -> None:
        """Applies committed entries, after any defragmentation that holds the backend (checked again after
        each wake-up: the next one may already hold it)."""
        while self._applies_resumed is not None:
            await self._applies_resumed.wait()
        self._apply_committed(entries)

    def _persist(self, rd: Ready) -> int | None:
        """Writes the Ready's entries and HardState to the raft storage and the WAL; returns the WAL sync to
        wait for before on_persisted, or None when nothing needs an fsync or it was done inline (``_alone``);
        raises WalWriteError if an inline fsync failed.

        A HardState whose term and vote did not change (only the commit index moved: ``must_sync`` is
        false) is kept back and written with the next entries, as the core allows: a commit index lost
        in a crash is learned again (the replay stops at the older one and the core commits the rest)."""
        if rd.entries:
            self.raft_storage.append(rd.entries)
        hard_state = rd.hard_state
        if hard_state is not None:
            self.raft_storage.set_hard_state(hard_state)
            if not rd.must_sync and not rd.entries:
                self._hard_state_unwritten = hard_state
                return None
        elif rd.entries and self._hard_state_unwritten is not None:
            hard_state = self._hard_state_unwritten
        if not rd.entries and hard_state is None:
            return None
        self._hard_state_unwritten = None
        self.wal.append(rd.entries, None if hard_state is None else to_wal_hard_state(hard_state))
        if not rd.must_sync or (self._alone(rd) and self.wal.sync_inline()):
            return None
        return self.wal.start_sync()

    def _alone(self, rd: Ready) -> bool:
        """Whether this Ready has nothing to overlap with its fsync, so that the fsync is cheaper on the event
        loop than on the WAL's thread (sync_inline: no hand-off to the thread and back, no extra scheduler
        pass before on_persisted): no messages for the transport to send meanwhile, no committed entries or
        read states to serve meanwhile, and at most one proposer waiting (the one client of this Ready) with no
        proposal queued for the next one. Any concurrency keeps the fsync on the thread, where proposals
        arriving during it are batched into the next fsync (group commit)."""
        return not (rd.messages or rd.committed_entries or rd.read_states or self._proposals or len(self._waiters) > 1)

    def _send(self, messages: list) -> None:
        if self.transport is not None:
            if self._is_leader:
                self._heartbeats.observe(messages, trio.current_time())
            self.transport.send(messages)

    def _on_peer_message(self, message) -> None:
        """A Raft message from a peer of this cluster: into the core; the Ready loop carries out the rest."""
        self.node.step(message)
        self._work.set()

    async def _on_peer_call(self, method: str, request: bytes) -> bytes:
        """A peer's request outside Raft: a forwarded lease call (to the leader) or a HashKV."""
        if method in lease_forward.METHODS:
            return await lease_forward.serve(self, method, request)
        if method == corrupt_check.HASH_KV:
            return await corrupt_check.serve_hash_kv(self, request)
        if method == PROMOTE_MEMBER:
            if not self.is_leader:
                raise errors.ERR_NOT_LEADER
            learner_id = rpc_pb2.MemberPromoteRequest.FromString(request).ID
            members = await self.change_membership(ChangeKind.PROMOTE, rpc_pb2.Member(ID=learner_id))
            return rpc_pb2.MemberPromoteResponse(members=members).SerializeToString()
        raise errors.EtcdError(errors.StatusCode.UNIMPLEMENTED, f"unknown peer call {method!r}")

    def _on_peer_unreachable(self, peer: int) -> None:
        self.node.report_unreachable(peer)
        self._work.set()

    def _on_snapshot_status(self, peer: int, failed: bool) -> None:
        self.node.report_snapshot(peer, failed)
        self._work.set()

    async def handle_peer_connection(self, stream) -> None:
        """The peer listener's handler: a connection from a peer, served by the transport once it runs."""
        await self._transport_ready.wait()
        await self.transport.handle_connection(stream)

    def _applied_all_committed(self) -> bool:
        raft = self.node.raft
        return raft.committed_entry_in_current_term() and self.store.consistent_index >= raft.log.committed

    def _follow_soft_state(self, leader: int, is_leader: bool) -> None:
        """Leadership as the core reports it: lease expiry runs on the leader only (etcd promotes its
        lessor when it becomes leader, extending every lease by an election timeout, and demotes it after)."""
        was_leader, previous = self._is_leader, self._leader_id
        self._leader_id, self._is_leader = leader, is_leader
        self.publish_applied_state()
        metrics.HAS_LEADER.set(1 if leader else 0)
        metrics.IS_LEADER.set(1 if is_leader else 0)
        if leader and leader != previous:
            metrics.LEADER_CHANGES.inc()
            self._reads.fail_in_flight(errors.ERR_LEADER_CHANGED())  # its ReadIndex may be lost with the old one
            self._issue_read_index()
            if is_leader:
                self._leader_elected_at = trio.current_time()
        if is_leader and not was_leader:
            self._heartbeats.reset()
            self.lessor.promote(extend=self.settings.election_timeout_ms / 1000)
        elif was_leader and not is_leader:
            self.lessor.demote()
        if leader != previous:
            log.info("raft leader changed", leader=f"{leader:x}", is_leader=is_leader, term=self.raft_term)

    def _apply_committed(self, entries: list[Entry]) -> None:
        with self.store.apply_batch():
            results = self._apply_entries(entries)
        self.publish_applied_state()
        if self.store.holds_compaction:
            metrics.DB_COMPACTION_LAST.set(time.time())
        if self.store.uncommitted_entries >= self.settings.backend_batch_limit or self.store.holds_compaction:
            self._commit_backend()
        elif self.store.batch_open:
            self._batch_open.set()
        if self.store.compaction_pending:
            self._compaction_work.set()
        hub = self.watch_hub
        for revision, events in self.store.take_events():
            hub.notify(revision, events)
        if hub.unsynced_count:
            self._sync_needed.set()
        failed = 0
        resolve = self._waiters.resolve
        for request_id, result in results:
            if isinstance(result, errors.EtcdError):
                failed += 1
            resolve(request_id, result)
        # Counted per batch rather than per caller (one lock each): a proposal whose caller gave up counts too.
        if failed:
            metrics.PROPOSALS_FAILED.inc(failed)
        self._reads.on_applied(self.store.consistent_index)

    def publish_applied_state(self) -> None:
        """Publishes the applied index, and whether this member leads alone: the only voter, leading, with its
        term's first entry applied, so its own linearizable reads need no ReadIndex round and every write it
        acknowledged is within the applied index (applied_mark.py)."""
        applied = self.store.consistent_index
        start = self.node.leading_alone_since()
        self.publish_applied(applied, start is not None and applied >= start)

    def _apply_entries(self, entries: list[Entry]) -> list[tuple[int, Any]]:
        """Applies committed entries in order, inside the store's batch; returns (request id, answer) for each
        request entry. Entries that hold no request (a leader's empty entry) only move the consistent index;
        a membership change goes to the core (or, while replaying before it starts, to the boot membership).
        An entry the store could not apply is logged here, once, and answered with its ApplyFailed error
        (the member goes on: every member applies the same entry the same way)."""
        results = []
        apply, decode = self.applier.apply_request, InternalRequest.FromString
        clock, slow, conf_change = time.perf_counter, self.settings.warning_apply_duration, EntryType.CONF_CHANGE
        started = clock()  # then each entry's end is the next one's start: one clock reading per entry
        for entry in entries:
            data = entry.data
            if entry.type is conf_change:
                answer = self._apply_conf_change(ConfChange.decode(data))
                if answer is not None:
                    results.append(answer)
            elif data:
                try:
                    request = decode(data)
                except Exception:  # bytes that do not parse: the store gives them their ApplyFailed answer
                    result, request_id = self.applier.apply(entry.index, data), _leading_request_id(data)
                else:
                    result, request_id = apply(entry.index, request), request.id
                if result.__class__ is ApplyFailed:
                    self._log_apply_failure(entry, result)
                results.append((request_id, result))
            ended = clock()
            if ended - started > slow:
                self._log_slow_apply(entry, ended - started)
                ended = clock()  # the log line's time is no entry's
            started = ended
        if entries:
            self.store.note_applied(entries[-1].index, entries[-1].term)
        return results

    def _apply_conf_change(self, cc: ConfChange) -> tuple[int, Any] | None:
        """A membership change, in log order on every member (membership.py): the member list and its rows,
        the core's configuration, the transport's peers. Returns (request id, the members or the EtcdError)
        for the proposer. A member that applies its own removal stops."""
        change = Change.decode(cc)
        if change is not None:
            try:
                self.membership.validate(change)
            except errors.EtcdError as exc:
                return change.request_id, exc  # refused on every member alike: the configuration stays
            self.membership.apply(change, self.store.batch)
            self.note_membership()
            if self.node is not None:  # not during the replay of changes logged before
                log.info(
                    _CHANGE_LOGS[change.kind],
                    cluster_id=f"{self.cluster_id:x}",
                    local_member_id=f"{self.member_id:x}",
                    member_id=f"{change.member.ID:x}",
                    peer_urls=list(change.member.peerURLs),
                )
        if self.node is not None:
            self.node.apply_conf_change(cc)
        else:
            self._boot_conf = confchange.apply(self._boot_conf, cc)
        if change is None:
            return None
        self._follow_membership(change)
        return change.request_id, self.members

    def _follow_membership(self, change: Change) -> None:
        """The transport's peers after an applied change; this member's own removal stops it."""
        target = change.member.ID
        if target == self.member_id:
            if change.member.ID not in self.membership.members and self.node is not None:
                self._removed_from_cluster.set()  # stops after REMOVED_STOP_DELAY: the others learn the commit first
            return
        if self.transport is None:
            return  # replaying before the transport runs: it starts with the applied membership
        member = self.membership.members.get(target)
        if member is None:
            self.transport.remove_peer(target)
        elif change.kind is ChangeKind.ADD:
            self.transport.add_peer(target, list(member.peerURLs))
        elif change.kind is ChangeKind.UPDATE_PEER_URLS:
            self.transport.update_peer(target, list(member.peerURLs))

    async def _stop_when_removed(self) -> None:
        await self._removed_from_cluster.wait()
        await trio.sleep(REMOVED_STOP_DELAY)
        raise self._removed()

    def _removed(self) -> MemberRemoved:
        log.warning("server error", error=REMOVED_REASON)
        log.warning("data-dir used by this member must be removed")
        self._stop(REMOVED_REASON)
        return MemberRemoved(REMOVED_REASON)

    async def _publish_attributes(self) -> None:
        """Publishes this member's name and client URLs through the log once they differ from the applied ones
        (etcd's publish on start), retrying until applied, so MemberList shows them on every member."""
        own = rpc_pb2.Member(ID=self.member_id, name=self.settings.name, clientURLs=self.settings.client_urls)
        while True:
            applied = self.membership.members.get(self.member_id)
            if applied is None or (applied.name, list(applied.clientURLs)) == (own.name, list(own.clientURLs)):
                return
            try:
                await self.change_membership(ChangeKind.PUBLISH_ATTRIBUTES, own)
                log.info("published local member to cluster through raft", name=own.name, urls=list(own.clientURLs))
                return
            except errors.EtcdError as exc:
                log.warning("failed to publish local member to cluster through raft", error=str(exc))
                await trio.sleep(self.settings.election_timeout_ms / 1000)

    async def _record_cluster_version(self) -> None:
        """etcd's leader records the cluster version once on a cluster that has none: if none is applied and
        this member leads with everything committed applied, it proposes this release's and waits for it
        (bounded: a dropped proposal is tried again by ``_cluster_version_loop``). Otherwise returns at once."""
        if self.applier.cluster_version is not None or not self._is_leader or not self._applied_all_committed():
            return
        with trio.move_on_after(5 + 2 * self.settings.election_timeout_ms / 1000):
            try:
                await self._waiters.wait(self._append_proposal(cluster_version_request()))
            except errors.EtcdError as exc:
                log.warning("failed to record the cluster version", error=str(exc))

    async def _cluster_version_loop(self) -> None:
        """Until a cluster version is applied (one leader may fall before recording it): whoever leads records it."""
        while self.applier.cluster_version is None:
            await trio.sleep(self.settings.election_timeout_ms / 1000)
            await self._record_cluster_version()

    async def promote_member(self, learner_id: int) -> list[rpc_pb2.Member]:
        """etcd's MemberPromote: the leader proposes it (refused at once, "can only promote a learner member
        which is in sync with leader", while the learner lags); a follower forwards it to the leader over the
        peer transport, as etcd's follower does over its peer HTTP, and returns the members the leader gave."""
        request = rpc_pb2.MemberPromoteRequest(ID=learner_id).SerializeToString()
        data = await lease_forward.forward(self, PROMOTE_MEMBER, request, call_timeout=self.request_timeout)
        if data is None:  # this member leads
            members = await self.change_membership(ChangeKind.PROMOTE, rpc_pb2.Member(ID=learner_id))
            metrics.LEARNER_PROMOTE_SUCCESSES.inc()
            return members
        return list(rpc_pb2.MemberPromoteResponse.FromString(data).members)

    async def change_membership(self, kind: ChangeKind, member: rpc_pb2.Member) -> list[rpc_pb2.Member]:
        """Proposes a membership change and waits until this member applied it; returns the members then.
        Raises the EtcdError that refused it, ERR_TIMEOUT if it was not applied in etcd's request timeout
        (a leader dropped it: say, a promotion proposed on a follower for a learner not in sync)."""
        request_id = self._next_request_id()
        cc = Change(kind, request_id, member).conf_change()
        timeout = 5 + 2 * self.settings.election_timeout_ms / 1000
        try:
            with trio.fail_after(timeout):
                while True:
                    try:
                        self.node.propose_conf_change(cc)
                    except ProposalDroppedError as exc:
                        if "already pending" not in str(exc):
                            raise _conf_change_error(str(exc)) from None
                    else:
                        self._work.set()
                    # A leader drops a change forwarded while another one is pending, unheard: propose it again
                    # (the same request id: a change applied twice fails validation the second time, unanswered).
                    with trio.move_on_after(CONF_CHANGE_RETRY):
                        result = await self._waiters.wait(request_id)
                        break
        except trio.TooSlowError:
            raise errors.ERR_TIMEOUT() from None
        if isinstance(result, errors.EtcdError):
            raise result
        return result

    def _on_removed(self) -> None:
        """A peer refused this member's messages because it was removed: it stops (etcd's errMemberRemoved), as
        it does once it applies its own removal."""
        self._removed_from_cluster.set()

    def _members_answer(self) -> bytes:
        """What a member joining with --initial-cluster-state existing is told: the membership and cluster id."""
        return self.member_list().SerializeToString()

    def member_list(self) -> rpc_pb2.MemberListResponse:
        header = rpc_pb2.ResponseHeader()
        self.fill_identity(header)
        return rpc_pb2.MemberListResponse(header=header, members=self.members)

    @staticmethod
    def _log_apply_failure(entry: Entry, failed: ApplyFailed) -> None:
        cause = failed.cause
        log.error(
            "failed to apply request",
            index=entry.index,
            error=f"{type(cause).__name__}: {cause}",
            request_bytes=len(entry.data),
            stack="".join(traceback.format_exception(cause)),
        )

    def _log_slow_apply(self, entry: Entry, took: float) -> None:
        """etcd's warning for an apply slower than --experimental-warning-apply-duration, counted as a slow apply."""
        metrics.SLOW_APPLY.inc()
        try:
            kind = InternalRequest.FromString(entry.data).WhichOneof("request") if entry.data else None
        except Exception:
            kind = None
        log.warning(
            "apply request took too long",
            took=f"{took * 1000:.3f}ms",
            expected_duration=f"{self.settings.warning_apply_duration * 1000:g}ms",
            index=entry.index,
            request=kind or entry.type.name.lower(),
        )

    async def _compaction_batches_loop(self) -> None:
        """Deletes what a compaction left to later batches (--experimental-compaction-batch-limit keys per
        backend transaction, committed each, 10 ms apart as etcd's), between apply batches; also what a
        compaction replayed from the WAL at start left."""
        while True:
            if not self.store.compaction_pending:
                await self._compaction_work.wait()
            self._compaction_work = trio.Event()
            batches = 1  # the compaction's own apply deleted the first
            while self.store.compaction_pending:
                while self._applies_resumed is not None:  # a defragmentation holds the backend
                    await self._applies_resumed.wait()
                if not self.store.compaction_pending:  # a snapshot installed meanwhile replaced the store
                    break
                with self.store.apply_batch():
                    self.store.continue_compaction()
                self._commit_backend()
                batches += 1
                await trio.sleep(COMPACTION_BATCH_PAUSE)
            log.info("finished scheduled compaction", compact_revision=self.store.compact_revision, batches=batches)

    async def _auto_compaction_loop(self) -> None:
        """--auto-compaction-*: proposes the Compact the schedule (auto_compaction.py) asks for, as the leader."""
        s = self.settings
        schedule = schedule_for(
            s.auto_compaction_mode, s.auto_compaction_retention, trio.current_time(), s.revision_compaction_interval
        )
        while True:
            schedule.sample(self.store.current_revision)
            await trio.sleep(schedule.interval)
            if not self._is_leader:
                continue
            now = trio.current_time()
            target = schedule.due(now, self.store.current_revision)
            if target is None:
                continue
            log.info(f"starting auto {s.auto_compaction_mode} compaction", revision=target)
            try:
                await self.propose(InternalRequest(compaction=rpc_pb2.CompactionRequest(revision=target)))
            except errors.ERR_COMPACTED:
                pass
            except errors.EtcdError as exc:
                log.warning(f"failed auto {s.auto_compaction_mode} compaction", revision=target, error=exc.message)
                continue
            schedule.succeeded(now, target)
            log.info(f"completed auto {s.auto_compaction_mode} compaction", revision=target)

    async def _tick_loop(self) -> None:
        """Drives the core's clock: one tick per --heartbeat-interval (elections after --election-timeout)."""
        interval = self.settings.heartbeat_interval_ms / 1000
        while True:
            await trio.sleep(interval)
            self.node.tick()
            self._work.set()

    async def _backend_commit_loop(self) -> None:
        """Commits the batch transaction --backend-batch-interval after the apply batch that opened it (a
        commit for the batch limit or a defragmentation in between only makes the next one come early)."""
        while True:
            await self._batch_open.wait()
            await trio.sleep(self.settings.backend_batch_interval)
            self._batch_open = trio.Event()
            self._commit_backend()

    def commit_for_readers(self) -> None:
        """Commits the batch transaction now, if one is open: other processes (read workers, etcdx/worker/)
        see only committed state, so a worker's linearizable read needs what was applied committed."""
        self._commit_backend()

    def _commit_backend(self) -> None:
        """Commits the batch transaction on the event loop (blocking for its fdatasync); a failed commit stops
        the member."""
        if not self.store.batch_open:
            return
        started = time.perf_counter()
        try:
            self.store.commit()
        except self.backend.storage_errors as exc:
            raise self._stop(f"backend: commit failed, stopping: {exc!r}") from exc
        metrics.BACKEND_COMMIT_SECONDS.observe(time.perf_counter() - started)
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
                self._compact_raft_log(index, release_below - 1)
            # Each sync, not only at a new release point: segments started since may push the count over
            # --max-wals, and those wholly below the point go then (as etcd purges on a timer).
            if release_below > 1:
                await self._release_wal(release_below)

    def _compact_raft_log(self, snapshot_index: int, compact_to: int) -> None:
        """Records the durable backend at ``snapshot_index`` as the raft storage's snapshot (its data is the
        backend itself) and drops the in-memory entries up to ``compact_to``, keeping the catch-up entries
        after it, as etcd compacts its raft log after a snapshot."""
        storage = self.raft_storage
        if snapshot_index > storage.stored_snapshot().index:
            storage.create_snapshot(snapshot_index, self.node.raft.tracker.conf, b"")
        if compact_to >= storage.first_index():
            storage.compact(compact_to)

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

    async def _lease_checkpoint_loop(self) -> None:
        """--experimental-enable-lease-checkpoint: the leader proposes the remaining TTLs of the leases whose
        checkpoint is due (etcd's batches of at most 1000)."""
        while True:
            await trio.sleep(LEASE_CHECK_INTERVAL)
            due = self.lessor.due_checkpoints(LEASE_CHECKPOINTS_PER_PROPOSAL)
            if due:
                checkpoints = [rpc_pb2.LeaseCheckpoint(ID=lease_id, remaining_TTL=ttl) for lease_id, ttl in due]
                await self._propose_checkpoints(checkpoints)

    async def clear_lease_checkpoint(self, lease_id: int) -> None:
        """Before a renewal: a checkpointed remaining TTL is cleared on every member first (as etcd does), so
        that a later leader does not start the renewed lease from it."""
        if self.lessor.needs_checkpoint_reset(lease_id):
            await self._propose_checkpoints([rpc_pb2.LeaseCheckpoint(ID=lease_id, remaining_TTL=0)])

    async def _propose_checkpoints(self, checkpoints: list[rpc_pb2.LeaseCheckpoint]) -> None:
        request = InternalRequest(lease_checkpoint=rpc_pb2.LeaseCheckpointRequest(checkpoints=checkpoints))
        try:
            await self.propose(request)
        except errors.EtcdError as exc:  # the next round (or renewal) tries again
            log.warning("failed to checkpoint leases", leases=len(checkpoints), error=exc.message)

    async def _revoke_expired(self, lease_id: int) -> None:
        try:
            await self.propose(InternalRequest(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=lease_id)))
            metrics.LEASE_EXPIRED.inc()
        except errors.EtcdError:
            pass  # already revoked by a client; if it is still there, the next check retries it
        finally:
            self._revoking.pop(lease_id, None)

    async def _token_purge_loop(self) -> None:
        """Drops expired simple tokens, so that their table stays bounded (JWTs hold no state)."""
        purge = getattr(self.tokens, "purge_expired", None)
        while purge is not None:
            await trio.sleep(TOKEN_PURGE_INTERVAL)
            purge(time.time())

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

    async def move_leader(self, transferee: int, deadline: float) -> None:
        """etcd's MoveLeader on the leader: hands leadership to the voting member ``transferee`` (the core's
        transfer: catch it up, then TimeoutNow) and waits, until the trio time ``deadline``, for it to lead.
        "etcdserver: bad leader transferee" for a target that is not a voting member; "etcdserver: request
        timed out, leader transfer took too long" if it does not lead by then."""
        target = next((m for m in self.members if transferee == m.ID), None)
        if target is None or target.isLearner:
            raise errors.ERR_BAD_LEADER_TRANSFEREE
        fields = dict(sender=f"{self.member_id:x}", target=f"{transferee:x}")
        log.info("leadership transfer starting", **fields)
        started = trio.current_time()
        self.node.transfer_leader(transferee)
        self._work.set()
        interval = self.settings.heartbeat_interval_ms / 1000
        while self._leader_id != transferee:
            if trio.current_time() >= deadline:
                raise errors.ERR_TIMEOUT_LEADER_TRANSFER
            await trio.sleep(interval)
        log.info("leadership transfer finished", took=f"{trio.current_time() - started:.3f}s", **fields)

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
            started = time.perf_counter()
            try:
                self._commit_backend()  # the copy reads the committed file
                copy_path = await trio.to_thread.run_sync(self.backend.write_compact_copy)
                self.backend.swap_in(copy_path)
            finally:
                self._applies_resumed.set()
                self._applies_resumed = None
            metrics.DEFRAG_SECONDS.observe(time.perf_counter() - started)
        self._backend_bytes = self.backend.size_bytes
        log.info("finished defragment", db_size=self._backend_bytes)

    @asynccontextmanager
    async def committed_view(self) -> AsyncIterator[TableView]:
        """A read view of everything applied so far: the batch transaction is committed first (etcd's
        ForceCommit). The caller gets it with no checkpoint in between, so state it reads on the event loop
        right away matches the view; it may read the view in a thread (one at a time). No defragmentation
        swaps the file while the view is open."""
        async with self._backend_lock:
            self._commit_backend()
            with self.backend.begin_read() as view:
                yield view

    def request_watch_sync(self) -> None:
        self._sync_needed.set()

    # -- what the API layer calls ------------------------------------------------------------

    async def propose(self, request: InternalRequest, if_abandoned: Callable[[Any], None] | None = None) -> Any:
        """Replicates ``request`` through the log and returns the store's response for it.

        Raises the EtcdError the request failed with. Cancelling the caller does not withdraw the
        proposal: once proposed it may be applied; only the answer is lost, or handed to ``if_abandoned``
        (the response, header not filled, or the EtcdError), which runs inside the apply loop and must not raise.
        """
        result = self._answer(await self._waiters.wait(self._append_proposal(request), if_abandoned))
        if isinstance(result, errors.EtcdError):
            raise result
        return result

    def propose_nowait(self, request: InternalRequest, on_done: Callable[[Any], None]) -> None:
        """``propose`` for a caller that holds no task: returns at once (or raises, as ``propose`` does before
        proposing), and once the entry is applied ``on_done`` gets the response (header filled) or the
        EtcdError it failed with. ``on_done`` runs inside the apply loop and must not raise."""
        self._waiters.on_resolve(self._append_proposal(request), lambda result: on_done(self._answer(result)))

    def propose_client_nowait(self, field: str, request: Message, data: bytes, on_done: Callable[[Any], None]) -> None:
        """``propose_nowait`` of the InternalRequest whose ``field`` (put, delete_range or txn) is ``request``,
        a client's request parsed from ``data``: the entry embeds ``data`` as it came (proposal_entry.py)."""
        request_id = self._admit_proposal()
        stamp = proposal_entry.auth_stamp(caller.current())
        data = proposal_entry.embedded(request_id, stamp, field, data, self.settings.max_request_bytes)
        if data is None:  # large: the plain entry, whose size --max-request-bytes judges
            plain = InternalRequest()
            getattr(plain, field).CopyFrom(request)
            data = self._encode_proposal(request_id, plain)
        self._queue_proposal(request_id, data)
        self._waiters.on_resolve(request_id, lambda result: on_done(self._answer(result)))

    def _answer(self, result: Any) -> Any:
        """A proposal's result as its proposer gets it: the response with its header filled, or the EtcdError."""
        if not isinstance(result, errors.EtcdError):
            self.fill_header(result.header)
        return result

    def _append_proposal(self, request: InternalRequest) -> int:
        """Gives ``request`` a new id, proposes it to the core and wakes the Ready loop; returns the id, which
        the apply of its entry resolves."""
        request_id = self._admit_proposal()
        self._queue_proposal(request_id, self._encode_proposal(request_id, request))
        return request_id

    def _admit_proposal(self) -> int:
        """A new proposal's id; raises "too many requests" instead while the log is more than MAX_APPLY_BACKLOG
        entries ahead of apply (etcd's rule). etcd 3.5 counts committed entries; its single member commits an
        entry as soon as it is appended (etcd-io/etcd#14370), so every accepted proposal counts there, as it does
        here with the log's last index (this log commits only after the fsync)."""
        if len(self._proposals) + self._log_last_index - self.store.consistent_index > MAX_APPLY_BACKLOG:
            raise errors.ERR_TOO_MANY_REQUESTS
        return self._next_request_id()

    def _encode_proposal(self, request_id: int, request: InternalRequest) -> bytes:
        """``request`` with its id and its caller's stamp, encoded; raises "request is too large" when the
        encoding is over --max-request-bytes."""
        request.id = request_id
        info = caller.current()
        if info is not None:  # a client's request: apply checks it as this user, at this auth revision
            if info is caller.ANONYMOUS:
                request.auth.SetInParent()  # the same stamp (empty user, revision 0), set in one call
            else:
                request.auth.username = info.username
                request.auth.revision = info.revision
        data = request.SerializeToString()
        if len(data) > self.settings.max_request_bytes:
            raise errors.ERR_REQUEST_TOO_LARGE
        return data

    def _queue_proposal(self, request_id: int, data: bytes) -> None:
        """Queues an encoded proposal for the core and wakes the Ready loop."""
        self._proposals.append((request_id, data))
        self._deadlines.add(request_id, trio.current_time())
        self._work.set()

    def _flush_proposals(self) -> None:
        """Hands the core every proposal queued since the last Ready, as one message (one append and one
        acknowledgement for the batch); if the core drops them (no leader), their proposers get "no leader"."""
        queued, self._proposals = self._proposals, []
        try:
            self.node.propose_batch([data for _, data in queued])
        except ProposalDroppedError:
            if not self.node.raft.lead:  # they wait for a leader (or their deadline), as etcd's Propose blocks
                self._proposals = queued + self._proposals
                return
            for request_id, _ in queued:
                self._waiters.resolve(request_id, errors.ERR_PROPOSAL_DROPPED())

    async def _proposal_timeout_loop(self) -> None:
        """Answers each proposal not applied within the request timeout with etcd's error for it
        (request_timeout.py); one that never reached a leader is withdrawn from the queue first."""
        while True:
            await trio.sleep(0.1)
            for first, last, started in self._deadlines.expired(trio.current_time()):
                pending = self._waiters.pending_between(first, last)
                if not pending:
                    continue
                never_proposed = {request_id for request_id, _ in self._proposals if first <= request_id <= last}
                if never_proposed:
                    self._proposals = [p for p in self._proposals if p[0] not in never_proposed]
                lost = timeout_error(
                    started,
                    self._leader_elected_at,
                    self.settings.election_timeout_ms / 1000,
                    self._leader_id,
                    self._connected_to_leader(),
                )
                for request_id in pending:
                    never = request_id in never_proposed
                    self._waiters.resolve(request_id, (errors.ERR_PROPOSAL_CONTEXT_DEADLINE if never else lost)())

    def _connected_to_leader(self) -> bool:
        """Whether this member has a connection to its leader (to a quorum of voters, when it leads)."""
        transport = self.transport
        if transport is None or not self._leader_id:
            return True
        if self._leader_id != self.member_id:
            return transport.is_active(self._leader_id)
        voters = self.node.raft.tracker.conf.voters
        reachable = sum(1 for v in voters if v == self.member_id or transport.is_active(v))
        return reachable > len(voters) // 2

    def _next_request_id(self) -> int:
        """Unique across members (the member id's low 16 bits lead) and restarts (a millisecond clock
        follows), as etcd's request ids are; never 0."""
        self._request_suffix += 1
        return (self._id_prefix | (self._request_suffix & ((1 << 48) - 1))) & ((1 << 63) - 1) or 1

    # -- linearizable reads ------------------------------------------------------------------

    def can_read_now(self) -> bool:
        """Whether a read served now is linearizable without waiting: the read index this member can give
        alone (as the only voter) is already applied. The common case of a single member, checked before
        anything is queued."""
        index = self.node.read_index_now()
        return index is not None and index <= self.store.consistent_index

    def linearizable_read_nowait(self, done: Callable[[errors.EtcdError | None], None]) -> None:
        """Calls ``done(None)`` once a read served now would be linearizable (read_index.py), or
        ``done(error)`` if it cannot be served. ``done`` runs inside the Ready loop and must not raise."""
        if self._reads.add(done):
            self._issue_read_index()

    async def linearizable_read(self) -> None:
        """Waits until a read served now is linearizable; raises the EtcdError that prevents it."""
        task = trio.lowlevel.current_task()
        answered: list[errors.EtcdError | None] = []

        def done(error: errors.EtcdError | None) -> None:
            if not answered:
                answered.append(error)
                trio.lowlevel.reschedule(task)

        self.linearizable_read_nowait(done)

        def abort(_: Any) -> trio.lowlevel.Abort:
            answered.append(None)  # the read is abandoned; its later callback does nothing
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if answered[0] is not None:
            raise answered[0]

    def _issue_read_index(self) -> None:
        """Issues a ReadIndex for the reads waiting now, if none is in flight. A member that can answer alone
        (the only voter) answers at once, and reads already applied up to the answer are served here."""
        ctx = self._reads.issue()
        if ctx is None:
            return
        node = self.node
        self._read_issued_at = trio.current_time()
        try:
            node.read_index(ctx)
        except ProposalDroppedError:  # no leader to ask: the retry loop asks again until the request timeout
            self._read_issued.set()
            return
        states = node.take_read_states()
        if states:
            applied = self.store.consistent_index
            for rs in states:
                self._reads.on_read_state(rs.index, rs.context, applied)
            return
        self._read_issued.set()
        self._work.set()

    async def _read_retry_loop(self) -> None:
        """Issues again a ReadIndex left unanswered for READ_INDEX_RETRY (etcd's readIndexRetryTime)."""
        while True:
            await self._read_issued.wait()
            self._read_issued = trio.Event()
            await trio.sleep(READ_INDEX_RETRY)
            if self._reads.in_flight and trio.current_time() - self._read_issued_at >= self.request_timeout:
                log.warning("timed out waiting for read index response (local node might have slow network)")
                metrics.SLOW_READ_INDEXES.inc()
                metrics.READ_INDEXES_FAILED.inc()
                self._reads.fail_in_flight(errors.ERR_TIMEOUT())
                self._issue_read_index()  # the reads that came since get a ReadIndex of their own
            elif self._reads.in_flight:
                ctx = self._reads.retry()
                if ctx is not None:
                    log.warning("ReadIndex not answered in time, retrying", pending_reads=len(self._reads))
                    with contextlib.suppress(ProposalDroppedError):  # no leader yet: tried again next time
                        self.node.read_index(ctx)
                    self._read_issued.set()
                    self._work.set()

    async def check_quota(self, cost: int) -> None:
        """Refuses a write of ``cost`` estimated bytes when the backend quota or a NOSPACE alarm forbids it.

        A write the quota itself refuses first raises this member's NOSPACE alarm through the log and waits
        for it to apply, as etcd does, so that once a client hears "database space exceeded" the alarm
        is listed (and survives a restart).
        """
        try:
            self._quota.check(cost, self._backend_bytes + self._uncommitted_cost)
        except QuotaExceeded:
            with caller.as_member():
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
            with caller.as_member():
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
        return self.store.range_encoded(request, (self.cluster_id, self.member_id, self.node.raft.term))

    def fill_header(self, header: rpc_pb2.ResponseHeader) -> None:
        self.fill_identity(header)
        if not header.revision:
            header.revision = self.store.current_revision

    def fill_identity(self, header: rpc_pb2.ResponseHeader) -> None:
        """The fields every response header carries: who answers, and in which term."""
        header.cluster_id = self.cluster_id
        header.member_id = self.member_id
        header.raft_term = self.node.raft.term

    def header(self) -> rpc_pb2.ResponseHeader:
        header = rpc_pb2.ResponseHeader()
        self.fill_header(header)
        return header

    async def wait_started(self) -> None:
        await self._started.wait()

    @property
    def raft_term(self) -> int:
        return self.node.raft.term

    @property
    def committed_index(self) -> int:
        return self.node.raft.log.committed

    @property
    def applied_index(self) -> int:
        return self.store.consistent_index

    @property
    def leader_id(self) -> int:
        """The leader this member follows (itself when it leads), 0 while there is none."""
        return self._leader_id

    @property
    def is_leader(self) -> bool:
        return self._is_leader

    def note_membership(self) -> None:
        """Refreshes ``is_learner`` from the membership; called whenever the membership changes."""
        own = self.membership.members.get(self.member_id)
        self.is_learner = own is not None and own.isLearner

    @property
    def current_revision(self) -> int:
        return self.store.current_revision

    @property
    def defragmenting(self) -> bool:
        """A defragmentation holds the backend (its copy is being written or swapped in)."""
        return self._applies_resumed is not None

    @property
    def db_size_bytes(self) -> int:
        return self.backend.size_bytes

    @property
    def db_size_in_use_bytes(self) -> int:
        return self.backend.size_in_use_bytes

    # -- leases as clients see them (grant and revoke go through the log) ----------------------

    async def renew_lease(self, lease_id: int) -> int:
        """A keep-alive: the granted TTL, or 0 for an unknown or already expired lease (the leader's lessor
        answers: lease_forward.py)."""
        return await lease_forward.renew(self, lease_id)

    async def lease_time_to_live(self, request: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse:
        """TimeToLive as the leader's lessor answers it (lease_forward.py)."""
        return await lease_forward.time_to_live(self, request)

    def local_lease_time_to_live(self, request: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse:
        """TimeToLive from this member's lessor (its expiries are real only while it leads)."""
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


def _restore_store(backend: Backend, lessor: Lessor) -> KVStore:
    """The store over the backend's committed state, its key index rebuilt (a few objects per key: millions at
    scale), then the file's pages the rebuild mapped unmapped from the member (Backend.release_mapped_pages).
    The cyclic collector is paused meanwhile (each collection would walk the index built so far), then what
    exists is frozen, as the member freezes its boot state once it serves (cli/main.py): later collections do
    not walk the index (it holds no reference cycles; reference counting still frees it). Garbage from before
    is collected first, so that none is frozen."""
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        store = KVStore(backend, lessor)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    backend.release_mapped_pages()  # the rebuild read the whole file; few of its pages are read again soon
    return store

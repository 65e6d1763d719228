"""Installing the leader's snapshot on this member: its backend image becomes the live backend, and the member's
state (store, leases, alarms, auth, v2 store, watchers, membership) is rebuilt on it.

The steps, and what a crash after each leaves (the data dir holds the member's lock throughout):

1. ``write_pending``: the image is written as an LMDB environment in ``member/kv.snapshot/`` (beside
   ``member/kv/``), its consistent index and term checked against the snapshot's, synced, the directories
   fsynced. Crash: the old backend and the old WAL, untouched; start-up removes the pending directory.
2. The WAL gets a new segment holding a SNAPSHOT record at (index, term) and the HardState, and is synced
   (``WAL.append_snapshot``). This is the commit point. Crash: start-up (``finish_interrupted``) finds the
   WAL's last snapshot record above the backend's consistent index and the pending file at that index, and
   moves it into place, then the log replays from after the snapshot.
3. The pending file is renamed over ``member/kv/data.mdb`` (atomic, both directories fsynced) and the
   environment reopened (``Backend.swap_in``). Crash: the new backend, and a WAL that restarts after it.
4. The WAL segments before the snapshot's are removed; the pending directory too.

A WAL whose last snapshot record is above the backend with no pending file at that index cannot be made
whole: start-up stops with that reason, having changed nothing but a stale pending directory.

Right after the rename, under the backend lock and without yielding (no read may see the old store over the
new file), the state is rebuilt exactly as start-up builds it: a new Lessor, KVStore, Applier (alarms and auth from
the backend), the v2 store if it is served, and the watch hub rebased on the new store (every watcher catches
up from the restored history, or is cancelled with the compact revision if the revision it needs is gone).
The membership comes from the image's members table; peers the transport does not know are added, moved
peers get their new URLs, and peers neither in the table nor in the snapshot's configuration are removed.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import trio

from etcdx.lease.lessor import Lessor
from etcdx.log import get_logger
from etcdx.mvcc import rows
from etcdx.mvcc import schema as meta
from etcdx.mvcc.backend import DATA_FILE, Backend
from etcdx.mvcc.kvstore import KVStore
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.raft import HardState, Snapshot
from etcdx.server.apply import Applier
from etcdx.server.data_dir import fsync_dir
from etcdx.server.membership import Membership
from etcdx.server.raft_storage import to_wal_hard_state
from etcdx.v2store.bootstrap import register_member, state_if_changed
from etcdx.wal.wal import last_snapshot

if TYPE_CHECKING:
    from etcdx.server.server import EtcdServer

log = get_logger("etcdx.server")

PENDING_DIR = "kv.snapshot"


class SnapshotInstallError(Exception):
    """The snapshot cannot be installed (a bad image), or an interrupted install cannot be finished."""


def pending_dir(backend_path: str) -> str:
    return os.path.join(os.path.dirname(os.path.normpath(backend_path)), PENDING_DIR)


def applied_point(path: str) -> tuple[int, int]:
    """(consistent index, term) of the LMDB environment in directory ``path`` (created empty if missing)."""
    backend = Backend(path, map_size=1 << 20)
    try:
        with backend.begin_read() as view:
            return (
                rows.get_meta_int(view, meta.META_CONSISTENT_INDEX, 0),
                rows.get_meta_int(view, meta.META_TERM, 0),
            )
    finally:
        backend.env.close()


def write_pending(backend_path: str, image: bytes, index: int, term: int, map_size: int) -> str:
    """Step 1 (blocking: run it in a thread): writes ``image`` as the pending environment; returns its data
    file. Raises SnapshotInstallError if the image does not decode or is not the backend at (index, term)."""
    directory = pending_dir(backend_path)
    _remove_tree(directory)
    backend = Backend(directory, map_size=map_size)
    try:
        try:
            backend.restore(image)
        except ValueError as exc:
            raise SnapshotInstallError(f"snapshot at index {index}: {exc}") from exc
        with backend.begin_read() as view:
            found = (
                rows.get_meta_int(view, meta.META_CONSISTENT_INDEX, 0),
                rows.get_meta_int(view, meta.META_TERM, 0),
            )
        if found != (index, term):
            raise SnapshotInstallError(
                f"snapshot at index {index} term {term} holds a backend at index {found[0]} term {found[1]}"
            )
        backend.sync()
    except BaseException:
        backend.env.close()
        _remove_tree(directory)
        raise
    backend.env.close()
    fsync_dir(directory)
    fsync_dir(os.path.dirname(directory))
    return os.path.join(directory, DATA_FILE)


def finish_interrupted(backend_path: str, wal_path: str) -> None:
    """At start-up, before the backend is opened: completes an install that reached its commit point (step 2)
    and discards one that did not. Raises SnapshotInstallError when the WAL restarts after a snapshot that
    neither the backend nor a pending file holds."""
    directory = pending_dir(backend_path)
    marker = last_snapshot(wal_path)
    if os.path.isdir(directory):
        pending_file = os.path.join(directory, DATA_FILE)
        if marker is not None and os.path.exists(pending_file):
            backend_index = applied_point(backend_path)[0]
            if backend_index < marker[0] and applied_point(directory)[0] == marker[0]:
                os.replace(pending_file, os.path.join(backend_path, DATA_FILE))
                fsync_dir(backend_path)
                fsync_dir(directory)
                log.warning(
                    "finished installing a snapshot that a stop interrupted",
                    snapshot_index=marker[0],
                    snapshot_term=marker[1],
                    previous_applied_index=backend_index,
                )
        _remove_tree(directory)
    if marker is not None:
        backend_index = applied_point(backend_path)[0]
        if backend_index < marker[0]:
            raise SnapshotInstallError(
                f"start-up refused: the WAL restarts after a snapshot at index {marker[0]} but the backend is at "
                f"index {backend_index} and no file of that snapshot is left: restore this member from a backup "
                "(etcdx snapshot restore) or remove and re-add it"
            )


def discard_pending(backend_path: str) -> None:
    """Removes the pending directory (what is left of it once its file was moved into place)."""
    _remove_tree(pending_dir(backend_path))


def _remove_tree(directory: str) -> None:
    if os.path.isdir(directory):
        shutil.rmtree(directory)
        fsync_dir(os.path.dirname(directory))


async def install(server: EtcdServer, snap: Snapshot, hard_state: HardState) -> None:
    """Installs ``snap`` (from a Ready) on ``server``: steps 1 to 4, then the rebuild (see the module
    docstring). Called by the Ready loop before it writes that Ready's entries; no WAL record may be pending.
    ``hard_state`` is the core's, written with the snapshot record. Raises SnapshotInstallError for an image
    that does not match the snapshot (nothing changed then)."""
    s = server.settings
    previous = server.store.consistent_index
    log.info(
        "applying snapshot",
        current_applied_index=previous,
        incoming_leader_snapshot_index=snap.index,
        incoming_leader_snapshot_term=snap.term,
        size=len(snap.data),
    )
    started = time.monotonic()
    pending_file = await trio.to_thread.run_sync(
        write_pending, s.backend_path, snap.data, snap.index, snap.term, s.backend_map_size
    )
    if hard_state.commit < snap.index:
        hard_state = replace(hard_state, commit=snap.index)
    server.wal.append_snapshot(snap.index, snap.term, to_wal_hard_state(hard_state))
    await server.wal.sync()
    async with server._backend_lock:  # no defragmentation or sync runs on the file meanwhile
        # From here to the end of the rebuild nothing yields: no read sees the old store over the new file.
        server.store.abort()  # applied but uncommitted entries: the snapshot supersedes them
        server.backend.swap_in(pending_file)
        _rebuild(server, snap)
    await trio.to_thread.run_sync(discard_pending, s.backend_path)
    removed = await server.wal.drop_before_snapshot()
    log.info(
        "applied snapshot",
        current_applied_index=server.store.consistent_index,
        incoming_leader_snapshot_index=snap.index,
        incoming_leader_snapshot_term=snap.term,
        previous_applied_index=previous,
        current_revision=server.store.current_revision,
        wal_segments_removed=len(removed),
        took=f"{time.monotonic() - started:.3f}s",
    )


def _rebuild(server: EtcdServer, snap: Snapshot) -> None:
    s = server.settings
    old_store, old_lessor = server.store, server.lessor
    server.lessor = Lessor(old_lessor.min_ttl, old_lessor.clock, old_lessor.checkpoint_interval)
    if old_lessor.primary:  # a leader is never sent a snapshot; kept for the invariant
        server.lessor.promote(extend=s.election_timeout_ms / 1000)
    server.store = KVStore(server.backend, server.lessor)
    server.backend.release_mapped_pages()  # the index rebuild read the whole file (as at start: server.py)
    server.store.compaction_batch_limit = s.compaction_batch_limit
    server.applier = Applier(server.store, server.lessor, server.alarms, tokens=server.tokens, now=time.time)
    server.applier.persist_checkpoints = s.lease_checkpoint_persist
    server.auth = server.applier.auth
    if s.enable_v2:
        server.v2store = register_member(s, time.time_ns(), server.store.saved_v2_state())
        server.applier.v2_applier = lambda request, index: server.v2store.apply(request, index, time.time_ns())
        server.store.v2_state = lambda: state_if_changed(server.v2store)
    server.watch_hub.rebase(server.store, delivered_through=old_store.current_revision)
    server.request_watch_sync()
    server.raft_storage.apply_snapshot(replace(snap, data=b""))
    server.durable_index = snap.index
    _adopt_members(server, snap)


def _adopt_members(server: EtcdServer, snap: Snapshot) -> None:
    """The membership as the image holds it (its members table and removed ids) replaces this member's, and
    the transport follows: new peers added, moved ones updated, removed ones dropped and refused."""
    with server.backend.begin_read() as view:
        stored = [rpc_pb2.Member.FromString(value) for _, value in rows.members(view)]
        removed = Membership.load_removed(view)
    if not stored:
        return
    before = {m.ID: list(m.peerURLs) for m in server.members}
    server.membership = Membership(stored, removed)
    server.note_membership()
    transport = server.transport
    if transport is None:
        return
    known = set(transport.peer_ids())
    listed = {m.ID: list(m.peerURLs) for m in stored if server.member_id != m.ID}
    for member_id, urls in listed.items():
        if member_id not in known:
            transport.add_peer(member_id, urls)
        elif urls != before.get(member_id):
            transport.update_peer(member_id, urls)
    in_conf = snap.conf_state.voters | snap.conf_state.learners
    for member_id in (known - set(listed) - in_conf) | (removed & known):
        transport.remove_peer(member_id)

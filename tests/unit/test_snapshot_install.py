"""Installing a leader's snapshot on a running EtcdServer (real LMDB and WAL in a temporary directory), and its
crash safety: the install is cut at each of its steps (the step raises, as a process killed there stops), the
member is started again on what is on disk, and it holds either its old state whole or the snapshot's whole,
never a mix, and serves. A full install rebuilds the store under open watchers, which catch up from the
restored history without a gap or a duplicate."""

from __future__ import annotations

import os

import pytest
import trio

from etcdx.lease.lessor import Lessor
from etcdx.mvcc.alarms import Alarms
from etcdx.mvcc.kvstore import KVStore
from etcdx.mvcc.memory_backend import MemoryBackend
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.raft import HardState, Snapshot
from etcdx.server import internal_watch, snapshot_install
from etcdx.server.apply import Applier
from etcdx.server.server import EtcdServer, MemberStopped
from etcdx.wal.wal import WAL
from tests.support.server_settings import server_settings

SNAP_INDEX, SNAP_TERM = 400, 9
OLD_KEYS = [b"old/%02d" % n for n in range(5)]
NEW_KEYS = [b"new/%02d" % n for n in range(30)]


class Crash(Exception):
    """The process dies here."""


def leader_image() -> bytes:
    """A leader's backend at (SNAP_INDEX, SNAP_TERM): NEW_KEYS at revisions 2..31, and a lease."""
    backend = MemoryBackend()
    lessor = Lessor(min_ttl=1, clock=lambda: 0.0)
    store = KVStore(backend, lessor)
    applier = Applier(store, lessor, Alarms())
    index = SNAP_INDEX - len(NEW_KEYS) - 1
    with store.apply_batch():
        applier.apply_request(index, InternalRequest(lease_grant=rpc_pb2.LeaseGrantRequest(ID=77, TTL=600)))
        for n, key in enumerate(NEW_KEYS):
            put = rpc_pb2.PutRequest(key=key, value=b"n", lease=77 if n == 0 else 0)
            applier.apply_request(index + n + 1, InternalRequest(put=put))
        store.note_applied(SNAP_INDEX, SNAP_TERM)
    store.commit()
    return backend.snapshot()


def settings(tmp_path):
    return server_settings(str(tmp_path / "data"), backend_map_size=64 << 20, wal_segment_bytes=64 << 10)


def keys(server: EtcdServer) -> list[bytes]:
    return [kv.key for kv in server.range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0")).kvs]


async def install(server: EtcdServer, data: bytes) -> None:
    snap = Snapshot(index=SNAP_INDEX, term=SNAP_TERM, data=data, conf_state=server.node.raft.tracker.conf)
    hard_state = HardState(term=max(SNAP_TERM, server.raft_term), vote=server.member_id, commit=SNAP_INDEX)
    await snapshot_install.install(server, snap, hard_state)


def run_member(tmp_path, body) -> None:
    """Starts the member, runs ``body(server)``, stops it (also when ``body`` raises Crash)."""

    async def main():
        server = EtcdServer(settings(tmp_path))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            try:
                with trio.fail_after(30):
                    await body(server)
            finally:
                nursery.cancel_scope.cancel()

    trio.run(main)


def old_member(tmp_path) -> None:
    async def body(server):
        for key in OLD_KEYS:
            await server.propose(InternalRequest(put=rpc_pb2.PutRequest(key=key, value=b"o")))

    run_member(tmp_path, body)


def state_after_restart(tmp_path) -> tuple[list[bytes], int, list[int]]:
    seen = []

    async def body(server):
        await server.propose(InternalRequest(put=rpc_pb2.PutRequest(key=b"zz/after", value=b"a")))
        seen.append((keys(server), server.applied_index, server.lease_ids()))

    run_member(tmp_path, body)
    assert not os.path.exists(snapshot_install.pending_dir(settings(tmp_path).backend_path))
    return seen[0]


def crash_at(monkeypatch, step: str) -> None:
    """Makes the install die right after (or, for a rename, right before) ``step``."""
    if step == "pending written":
        real = snapshot_install.write_pending

        def write_then_crash(*args):
            real(*args)
            raise Crash

        monkeypatch.setattr(snapshot_install, "write_pending", write_then_crash)
    elif step == "wal committed":

        def crash(*args):
            raise Crash

        monkeypatch.setattr("etcdx.mvcc.backend.Backend.swap_in", crash)
    elif step == "renamed":

        def crash(*args):
            raise Crash

        monkeypatch.setattr(snapshot_install, "discard_pending", crash)
    elif step == "pending removed":

        async def crash(*args):
            raise Crash

        monkeypatch.setattr(WAL, "drop_before_snapshot", crash)


@pytest.mark.parametrize(
    ("step", "expect_new"),
    [("pending written", False), ("wal committed", True), ("renamed", True), ("pending removed", True)],
)
def test_an_install_cut_at_any_step_leaves_the_old_state_or_the_new_one_whole(tmp_path, monkeypatch, step, expect_new):
    old_member(tmp_path)
    image = leader_image()

    async def body(server):
        with pytest.raises(Crash):
            await install(server, image)

    with monkeypatch.context() as patch:
        crash_at(patch, step)
        run_member(tmp_path, body)
    found, applied, leases = state_after_restart(tmp_path)
    if expect_new:
        assert found == [*NEW_KEYS, b"zz/after"]
        assert applied > SNAP_INDEX
        assert leases == [77]
    else:
        assert found == [*OLD_KEYS, b"zz/after"]
        assert applied < SNAP_INDEX
        assert leases == []


def test_a_full_install_rebuilds_the_member_and_open_watchers_catch_up_from_the_snapshot(tmp_path):
    old_member(tmp_path)
    image = leader_image()
    events = []

    async def body(server):
        head = server.current_revision  # 6: the old keys at revisions 2..6
        async with internal_watch.watch(server, b"new/", b"new0", 0) as channel:
            await install(server, image)
            assert keys(server) == NEW_KEYS
            assert server.lease_ids() == [77]
            assert server.applied_index == SNAP_INDEX
            while len(events) < len(NEW_KEYS) - (head - 1):
                response = await channel.receive()
                events.extend((e.kv.mod_revision, e.kv.key) for e in response.events)
        # Everything the restored history holds after what the watcher had (revision 6), once, in order.
        assert events == [(rev, NEW_KEYS[rev - 2]) for rev in range(head + 1, len(NEW_KEYS) + 2)]

    run_member(tmp_path, body)
    found, applied, leases = state_after_restart(tmp_path)
    assert (found, leases) == ([*NEW_KEYS, b"zz/after"], [77])
    assert applied > SNAP_INDEX


def test_an_image_that_is_not_the_snapshot_changes_nothing(tmp_path):
    old_member(tmp_path)

    async def body(server):
        with pytest.raises(snapshot_install.SnapshotInstallError, match="backend image"):
            await install(server, b"not an image")
        with pytest.raises(snapshot_install.SnapshotInstallError, match="holds a backend at index"):
            await install(server, _image_at_other_index())
        assert keys(server) == OLD_KEYS

    run_member(tmp_path, body)
    assert state_after_restart(tmp_path)[0] == [*OLD_KEYS, b"zz/after"]


def _image_at_other_index() -> bytes:
    backend = MemoryBackend()
    store = KVStore(backend)
    with store.apply_batch():
        store.advance_to(SNAP_INDEX - 1)
        store.note_applied(SNAP_INDEX - 1, SNAP_TERM)
    store.commit()
    return backend.snapshot()


def test_a_wal_past_a_snapshot_the_backend_lacks_refuses_the_start(tmp_path, monkeypatch):
    old_member(tmp_path)
    image = leader_image()

    async def body(server):
        with pytest.raises(Crash):
            await install(server, image)

    with monkeypatch.context() as patch:
        crash_at(patch, "wal committed")
        run_member(tmp_path, body)
    pending = snapshot_install.pending_dir(settings(tmp_path).backend_path)
    os.remove(os.path.join(pending, "data.mdb"))  # the installed image is lost
    with pytest.raises(BaseException) as caught:
        run_member(tmp_path, lambda server: trio.sleep(0))
    stopped = [e for e in _leaves(caught.value) if isinstance(e, MemberStopped)]
    assert stopped and "the WAL restarts after a snapshot at index 400" in str(stopped[0])


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]

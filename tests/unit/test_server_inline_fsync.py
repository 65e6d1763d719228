"""The Ready loop's two ways to fsync, on a running EtcdServer over real files: a lone proposer's entry is
fsynced inline on the event loop, concurrent proposers share fsyncs on the WAL's thread (group commit), and
either way no proposal is answered before an fdatasync that covers its entry has returned.

The disk is watched through os.pwrite and os.fdatasync, which the inline sync and the twin sync worker call (the
compiled worker calls the C functions, out of Python's sight): these tests run the server with the twin worker.
The compiled worker's own contract is tested in tests/unit/test_walsync.py."""

from __future__ import annotations

import os
import threading

import trio

from etcdx._native import walsync_py
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.pb.etcdxpb.raft_pb2 import Entry
from etcdx.server.server import EtcdServer
from etcdx.wal import record
from etcdx.wal import wal as wal_module
from etcdx.wal.record import RecordType
from tests.support.server_settings import server_settings


class DiskWatch:
    """Follows what reaches the WAL's files: the highest entry index written, the highest one an fdatasync
    has returned for (``durable``), and the thread of each fdatasync."""

    def __init__(self, monkeypatch) -> None:
        self.written = 0
        self.durable = 0
        self.threads: list[str] = []
        real_write, real_sync = os.pwrite, os.fdatasync

        def pwrite(fd: int, data, offset: int) -> int:
            written = real_write(fd, data, offset)
            data, position = bytes(data[:written]), 0
            while (decoded := record.decode_at(data, position)).kind == "record":
                if decoded.record_type == RecordType.ENTRY:
                    self.written = max(self.written, Entry.FromString(decoded.payload).index)
                position = decoded.next_offset
            return written

        def fdatasync(fd: int) -> None:
            covered = self.written  # written before this fdatasync started (one job or inline sync at a time)
            real_sync(fd)
            self.durable = max(self.durable, covered)
            self.threads.append(threading.current_thread().name)

        monkeypatch.setattr(os, "pwrite", pwrite)
        monkeypatch.setattr(os, "fdatasync", fdatasync)


def with_twin_sync_worker(monkeypatch) -> None:
    """The server opened after this call syncs its WAL jobs on the twin worker (in Python's sight)."""
    monkeypatch.setattr(wal_module, "_walsync", walsync_py)


async def put_checked(server: EtcdServer, disk: DiskWatch, key: bytes) -> None:
    response = await server.propose(InternalRequest(put=rpc_pb2.PutRequest(key=key, value=b"v")))
    # Answered: the entry that carried it (applied by now, at or below the applied index) is on disk.
    assert disk.durable >= server.applied_index, (disk.durable, server.applied_index)
    assert response.header.revision > 1


async def test_a_lone_proposer_is_fsynced_inline_and_answered_only_after_it(tmp_path, monkeypatch):
    # A busy machine's fdatasync can pass the slow-disk limit, which sends fsyncs back to the thread
    # (tests/unit/test_wal_inline.py checks that); here every disk counts as fast.
    monkeypatch.setattr(wal_module, "INLINE_FSYNC_LIMIT", 60.0)
    with_twin_sync_worker(monkeypatch)
    server = EtcdServer(server_settings(str(tmp_path / "data")))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await server.wait_started()
        disk = DiskWatch(monkeypatch)
        for n in range(20):
            await put_checked(server, disk, b"k%d" % n)
        # Every one of them alone in its Ready: its fsync ran on the event loop's thread, one per put.
        assert disk.threads == [threading.current_thread().name] * 20
        nursery.cancel_scope.cancel()


async def test_concurrent_proposers_share_fsyncs_on_the_wal_thread(tmp_path, monkeypatch):
    with_twin_sync_worker(monkeypatch)
    server = EtcdServer(server_settings(str(tmp_path / "data")))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await server.wait_started()
        disk = DiskWatch(monkeypatch)
        proposers = 32
        async with trio.open_nursery() as clients:
            for n in range(proposers):
                clients.start_soon(put_checked, server, disk, b"c%d" % n)
        assert 0 < len(disk.threads) < proposers  # group commit: fewer fsyncs than writes
        assert "etcdx-wal-sync" in disk.threads
        nursery.cancel_scope.cancel()

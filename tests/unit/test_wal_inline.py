"""WAL.sync_inline: the fsync on the calling thread, taken only while no sync job runs and every pending record
goes to an open segment; the same durability and fail-stop as a job on the sync thread."""

from __future__ import annotations

import threading
import time

import pytest

from etcdx._native import walsync_py
from etcdx.pb.etcdxpb.raft_pb2 import Entry, HardState
from etcdx.wal import wal as wal_module
from etcdx.wal.wal import WAL, WalWriteError


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term=term, index=i, data=b"payload-%d" % i) for i in range(first, last + 1)]


def record_inline_fdatasyncs(monkeypatch) -> list[str]:
    """The name of the thread of each WAL fdatasync that ran on the test's (the event loop's) thread, in order.
    A job's fdatasyncs run on the sync worker's thread (the compiled worker does not call os.fdatasync at all):
    they are ``wal.fsync_count`` minus these."""
    threads: list[str] = []
    real = wal_module.os.fdatasync
    here = threading.current_thread()

    def fdatasync(fd: int) -> None:
        real(fd)
        if threading.current_thread() is here:
            threads.append(here.name)

    monkeypatch.setattr(wal_module.os, "fdatasync", fdatasync)
    return threads


async def test_an_inline_sync_is_durable_and_runs_on_the_calling_thread(tmp_path, monkeypatch):
    wal, _ = await WAL.open(str(tmp_path))
    threads = record_inline_fdatasyncs(monkeypatch)
    wal.append(entries(1, 2), HardState(term=1, commit=2))
    assert wal.sync_inline()
    assert threads == [threading.current_thread().name]
    assert wal.fsync_count == 1
    await wal.wait_synced(wal.start_sync())  # already durable: returns at once, starts no job
    assert len(threads) == 1
    await wal.close()
    _, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == [1, 2]
    assert replay.hard_state == HardState(term=1, commit=2)


async def test_inline_and_thread_syncs_interleave_in_append_order(tmp_path):
    wal, _ = await WAL.open(str(tmp_path))
    wal.append(entries(1, 1))
    assert wal.sync_inline()
    wal.append(entries(2, 3))
    await wal.sync()
    wal.append(entries(4, 4))
    assert wal.sync_inline()
    await wal.close()
    _, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == [1, 2, 3, 4]


async def test_no_inline_sync_while_a_job_runs(tmp_path, monkeypatch):
    wal, _ = await WAL.open(str(tmp_path))
    threads = record_inline_fdatasyncs(monkeypatch)
    wal.append(entries(1, 1))
    target = wal.start_sync()  # a job on the sync thread
    wal.append(entries(2, 2))
    assert not wal.sync_inline()  # it would write beside the running job: left to the thread
    await wal.wait_synced(target)
    await wal.sync()
    assert threads == [] and wal.fsync_count == 2  # both on the sync thread
    await wal.close()
    _, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == [1, 2]


async def test_no_inline_sync_when_a_new_segment_must_be_created(tmp_path, monkeypatch):
    wal, _ = await WAL.open(str(tmp_path), segment_bytes=4096)
    threads = record_inline_fdatasyncs(monkeypatch)
    wal.append(entries(1, 1))
    assert wal.sync_inline()
    wal.append([Entry(term=1, index=2, data=b"x" * 5000)])  # does not fit: the next segment is created
    assert not wal.sync_inline()
    await wal.sync()
    assert threads == [threading.current_thread().name] and wal.fsync_count == 2  # the second on the sync thread
    await wal.close()
    _, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == [1, 2]
    assert wal.segment_count == 2


async def test_a_failed_inline_fsync_fails_it_and_every_later_sync(tmp_path, monkeypatch):
    wal, _ = await WAL.open(str(tmp_path))
    wal.append(entries(1, 1))
    assert wal.sync_inline()

    def failing_fdatasync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(wal_module.os, "fdatasync", failing_fdatasync)
    wal.append(entries(2, 2))
    with pytest.raises(WalWriteError, match="Input/output error"):
        wal.sync_inline()
    assert isinstance(wal.failure, OSError)
    monkeypatch.undo()
    wal.append(entries(3, 3))
    with pytest.raises(WalWriteError):
        wal.sync_inline()
    with pytest.raises(WalWriteError):
        await wal.sync()


async def test_a_slow_disk_keeps_syncs_on_the_thread_until_one_is_fast_again(tmp_path, monkeypatch):
    # The WAL's choice is under test, so every fdatasync is made slow or fast by hand: through os.fdatasync,
    # which the twin sync worker calls (the compiled one calls the C function); its thread is "etcdx-wal-sync".
    monkeypatch.setattr(wal_module, "_walsync", walsync_py)
    wal, _ = await WAL.open(str(tmp_path))
    threads: list[str] = []

    def fdatasync_taking(seconds: float):
        def fdatasync(fd: int) -> None:  # records where it ran; the duration is what this test is about
            threads.append(threading.current_thread().name)
            time.sleep(seconds)

        return fdatasync

    monkeypatch.setattr(wal_module.os, "fdatasync", fdatasync_taking(wal_module.INLINE_FSYNC_LIMIT * 3))
    wal.append(entries(1, 1))
    assert wal.sync_inline()  # nothing was known of the disk yet: this one holds the loop for a slow fsync
    wal.append(entries(2, 2))
    assert not wal.sync_inline()  # the disk was just slow: no second stall of the event loop
    await wal.sync()  # slow again, on the thread
    wal.append(entries(3, 3))
    assert not wal.sync_inline()
    monkeypatch.setattr(wal_module.os, "fdatasync", fdatasync_taking(0.0))
    await wal.sync()  # a fast fsync on the thread
    wal.append(entries(4, 4))
    assert wal.sync_inline()  # the disk is fast again
    main = threading.current_thread().name
    assert threads == [main, "etcdx-wal-sync", "etcdx-wal-sync", main]
    await wal.close()
    _, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == [1, 2, 3, 4]

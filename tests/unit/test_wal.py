"""The write-ahead log on real files: replay, torn-tail repair, corruption, rotation, group commit."""

from __future__ import annotations

import os
import pathlib
import threading

import pytest
import trio
import trio.testing

from etcdx.pb.etcdxpb.raft_pb2 import Entry, HardState
from etcdx.wal import record
from etcdx.wal import wal as wal_module
from etcdx.wal.wal import WAL, WalCorruptError, WalWriteError


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term=term, index=i, data=b"payload-%d" % i) for i in range(first, last + 1)]


def segment_files(directory) -> list[str]:
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".wal"))


async def write(directory, batches, segment_bytes=64 * 1024) -> None:
    wal, _ = await WAL.open(str(directory), segment_bytes=segment_bytes)
    for batch in batches:
        wal.append(batch, HardState(term=1, commit=batch[-1].index))
        await wal.sync()
    await wal.close()


async def test_round_trip_and_reopen(tmp_path):
    await write(tmp_path, [entries(1, 5), entries(6, 9)])
    wal, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == list(range(1, 10))
    assert replay.entries[3].data == b"payload-4"
    assert replay.hard_state == HardState(term=1, commit=9)
    assert replay.last_index == 9
    wal.append(entries(10, 10))
    await wal.sync()
    await wal.close()
    _, replay = await WAL.open(str(tmp_path), after_index=8)
    assert [e.index for e in replay.entries] == [9, 10]
    assert replay.last_index == 10


async def test_a_rewritten_index_replaces_the_tail(tmp_path):
    await write(tmp_path, [entries(1, 6), entries(4, 5, term=2)])
    _, replay = await WAL.open(str(tmp_path))
    assert [(e.index, e.term) for e in replay.entries] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)]
    assert replay.last_index == 5


async def test_rotation_across_segments(tmp_path):
    batches = [entries(i, i + 9) for i in range(1, 400, 10)]
    await write(tmp_path, batches, segment_bytes=4096)
    assert len(segment_files(tmp_path)) >= 3
    _, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == list(range(1, 401))


async def test_torn_tail_is_cut_at_every_offset(tmp_path):
    """A crash while the last record was written leaves a prefix of it: the log ends before it."""
    source = tmp_path / "source"
    await write(source, [entries(1, 3)])
    [path] = segment_files(source)
    data = pathlib.Path(path).read_bytes()
    ends = []
    offset = 0
    while (decoded := record.decode_at(data, offset)).kind == "record":
        ends.append(decoded.next_offset)
        offset = decoded.next_offset
    last_start, last_end = ends[-2], ends[-1]  # the final record is the hard state after entry 3
    for cut in range(last_start, last_end):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        torn = data[:cut] + b"\0" * (len(data) - cut)
        (directory / os.path.basename(path)).write_bytes(torn)
        wal, replay = await WAL.open(str(directory))
        assert [e.index for e in replay.entries] == [1, 2, 3]
        wal.append(entries(4, 4))
        await wal.sync()
        await wal.close()
        _, replay = await WAL.open(str(directory))
        assert [e.index for e in replay.entries] == [1, 2, 3, 4]


async def test_corrupt_record_before_valid_data_stops_start_up(tmp_path):
    await write(tmp_path, [entries(1, 5)])
    [path] = segment_files(tmp_path)
    data = bytearray(pathlib.Path(path).read_bytes())
    first_end = record.decode_at(bytes(data), 0).next_offset
    data[first_end + record.HEADER_SIZE + 3] ^= 0xFF  # inside the second record's payload
    pathlib.Path(path).write_bytes(bytes(data))
    with pytest.raises(WalCorruptError, match=f"{os.path.basename(path)} at offset {first_end}"):
        await WAL.open(str(tmp_path))


async def test_group_commit_shares_fsyncs(tmp_path):
    wal, _ = await WAL.open(str(tmp_path))
    writers = 64
    appended = []

    async def writer() -> None:
        appended.append(len(appended) + 1)
        wal.append([Entry(term=1, index=appended[-1], data=b"x")])
        await wal.sync()

    async with trio.open_nursery() as nursery:
        for _ in range(writers):
            nursery.start_soon(writer)
    assert wal.fsync_count < writers
    await wal.close()
    _, replay = await WAL.open(str(tmp_path))
    assert len(replay.entries) == writers


async def test_start_sync_then_wait_covers_what_was_appended_before(tmp_path):
    wal, _ = await WAL.open(str(tmp_path))
    wal.append(entries(1, 3))
    target = wal.start_sync()
    wal.append(entries(4, 5))  # after the target: the running fsync need not cover these
    await wal.wait_synced(target)
    await wal.wait_synced(wal.start_sync())
    await wal.close()
    _, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == [1, 2, 3, 4, 5]


async def test_a_failed_write_on_the_sync_thread_fails_that_sync_and_every_later_one(tmp_path):
    wal, _ = await WAL.open(str(tmp_path))
    wal.append(entries(1, 1))
    await wal.sync()
    segment = wal._writing
    writable, segment.fd = segment.fd, os.open(segment.path, os.O_RDONLY)  # the kernel refuses the pwrite: EBADF
    wal.append(entries(2, 2))
    with trio.fail_after(10), pytest.raises(WalWriteError, match="Bad file descriptor"):
        await wal.sync()
    assert isinstance(wal.failure, OSError)
    os.close(segment.fd)
    segment.fd = writable
    wal.append(entries(3, 3))
    with trio.fail_after(10), pytest.raises(WalWriteError):
        await wal.sync()
    with trio.fail_after(10):
        await wal.close()
    _, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == [1]


async def test_an_exception_that_is_not_an_oserror_on_the_sync_thread_fails_the_sync(tmp_path, monkeypatch):
    wal, _ = await WAL.open(str(tmp_path), segment_bytes=4096)
    wal.append(entries(1, 1))
    await wal.sync()
    on_threads = []

    def broken_create(segment) -> None:  # the sync thread creates the next segment: this job's first run
        on_threads.append(threading.current_thread() is not threading.main_thread())
        raise RuntimeError("injected: not an OSError")

    monkeypatch.setattr(wal_module, "create_segment", broken_create)
    wal.append([Entry(term=1, index=2, data=b"x" * 8192)])  # does not fit the rest of the first segment
    with trio.fail_after(10), pytest.raises(WalWriteError, match="injected"):
        await wal.sync()
    assert on_threads == [True]
    assert isinstance(wal.failure, RuntimeError)
    monkeypatch.undo()
    wal.append(entries(3, 3))
    with trio.fail_after(10), pytest.raises(WalWriteError):
        await wal.sync()
    with trio.fail_after(10):
        await wal.close()  # the thread survived and stops when asked
    _, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == [1]


async def test_waiters_share_one_reader_and_a_cancelled_reader_hands_over(tmp_path, monkeypatch):
    """Many tasks wait for the same job: one reads the worker's outcome; cancelling it mid-wait leaves the
    others to take over (none hangs), and the records end up durable. The job is held on the sync thread (in
    the creation of its segment) until every waiter is in place."""
    wal, _ = await WAL.open(str(tmp_path), segment_bytes=4096)
    wal.append(entries(1, 1))
    await wal.sync()
    release = threading.Event()
    real_create = wal_module.create_segment

    def held_create(segment) -> None:
        assert release.wait(10)
        real_create(segment)

    monkeypatch.setattr(wal_module, "create_segment", held_create)
    wal.append([Entry(term=1, index=2, data=b"x" * 8192)])  # does not fit the first segment: the job creates one
    target = wal.start_sync()
    woken = []

    async def waiter(name: str, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await wal.wait_synced(target)
            woken.append(name)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            first = await nursery.start(waiter, "cancelled")
            await trio.testing.wait_all_tasks_blocked()
            assert wal._collecting  # the first waiter reads the worker's outcome; the others wait for it
            for name in ("a", "b", "c"):
                nursery.start_soon(waiter, name)
            await trio.testing.wait_all_tasks_blocked()
            first.cancel()
            await trio.testing.wait_all_tasks_blocked()
            release.set()
    assert sorted(woken) == ["a", "b", "c"]
    await wal.close()
    _, replay = await WAL.open(str(tmp_path))
    assert [e.index for e in replay.entries] == [1, 2]


async def test_raft_shaped_view_and_release(tmp_path):
    await write(tmp_path, [entries(i, i + 9) for i in range(1, 300, 10)], segment_bytes=2048)
    count = len(segment_files(tmp_path))
    assert count >= 4
    wal, replay = await WAL.open(str(tmp_path), after_index=290, segment_bytes=2048, max_segments=2)
    assert replay.segments_read <= 2  # start-up reads only what it needs
    assert [e.index for e in replay.entries] == list(range(291, 301))
    assert replay.hard_state == HardState(term=1, commit=300)
    assert wal.first_index == 1 and wal.last_index == 300
    assert [e.index for e in await wal.entries_from(150)] == list(range(150, 301))
    assert await wal.term(77) == 1 and await wal.term(301) is None

    assert await wal.release_to(1) == []
    removed = await wal.release_to(150)
    assert removed and all(not os.path.exists(p) for p in removed)
    assert 1 < wal.first_index <= 150  # the segment holding 150 is kept
    assert [e.index for e in await wal.entries_from(wal.first_index)][-1] == 300
    await wal.release_to(10_000)
    assert wal.segment_count == 2  # --max-wals: at least that many stay
    wal.append(entries(301, 301))
    await wal.close()
    _, replay = await WAL.open(str(tmp_path), after_index=300)
    assert [e.index for e in replay.entries] == [301]


async def test_max_segments_zero_keeps_every_segment(tmp_path):
    await write(tmp_path, [entries(i, i + 9) for i in range(1, 200, 10)], segment_bytes=2048)
    wal, _ = await WAL.open(str(tmp_path), segment_bytes=2048, max_segments=0)
    count = wal.segment_count
    assert await wal.release_to(10_000) == []
    assert wal.segment_count == count == len(segment_files(tmp_path))
    await wal.close()

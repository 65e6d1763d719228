"""The WAL's snapshot record on real files: after ``append_snapshot(S, ...)`` the log is "the snapshot at S, then
what follows", whether it is read from before the record (a backend still at its old point) or from the
record on, also when the log held uncommitted entries past S (the new segment then starts below the segment
before it); the older segments go with ``drop_before_snapshot``; ``last_snapshot`` finds the record."""

from __future__ import annotations

import os

from etcdx.pb.etcdxpb.raft_pb2 import Entry, HardState
from etcdx.wal.wal import WAL, last_snapshot


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term=term, index=i, data=b"payload-%d" % i) for i in range(first, last + 1)]


def segment_names(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".wal"))


async def log_with_snapshot(directory, last_before: int, snap: int) -> None:
    """Entries 1..last_before in small segments, then a snapshot at ``snap`` (term 5) and entries after it."""
    wal, _ = await WAL.open(str(directory), segment_bytes=2048)
    for first in range(1, last_before + 1, 10):
        wal.append(entries(first, min(first + 9, last_before)), HardState(term=1, commit=first))
        await wal.sync()
    assert last_snapshot(str(directory)) is None
    wal.append_snapshot(snap, 5, HardState(term=6, vote=2, commit=snap))
    await wal.sync()
    wal.append(entries(snap + 1, snap + 3, term=6), HardState(term=6, vote=2, commit=snap + 3))
    await wal.sync()
    await wal.close()


async def test_a_replay_from_before_the_snapshot_record_restarts_after_it(tmp_path):
    await log_with_snapshot(tmp_path, last_before=40, snap=100)
    _, replay = await WAL.open(str(tmp_path), after_index=12)  # a backend still at 12
    assert replay.snapshot == (100, 5)
    assert [(e.index, e.term) for e in replay.entries] == [(101, 6), (102, 6), (103, 6)]
    assert replay.hard_state == HardState(term=6, vote=2, commit=103)
    assert last_snapshot(str(tmp_path)) == (100, 5)


async def test_a_replay_from_the_snapshot_on_and_the_older_segments_dropped(tmp_path):
    await log_with_snapshot(tmp_path, last_before=40, snap=100)
    wal, replay = await WAL.open(str(tmp_path), after_index=100)
    assert [e.index for e in replay.entries] == [101, 102, 103]
    wal.append_snapshot(200, 7, HardState(term=7, commit=200))  # a second install
    await wal.sync()
    before = len(segment_names(tmp_path))
    removed = await wal.drop_before_snapshot()
    assert len(removed) == before - 1 and segment_names(tmp_path) == [os.path.basename(wal._segments[0].path)]
    wal.append(entries(201, 202, term=7))
    await wal.sync()
    await wal.close()
    _, replay = await WAL.open(str(tmp_path), after_index=200)
    assert (replay.snapshot, [e.index for e in replay.entries]) == ((200, 7), [201, 202])


async def test_uncommitted_entries_past_the_snapshot_are_forgotten(tmp_path):
    """A follower whose log ran past S with entries the leader never committed: its new segment starts at S + 1,
    below the segments before it, and the log still reads back right from either starting point."""
    await log_with_snapshot(tmp_path, last_before=90, snap=30)
    names = segment_names(tmp_path)
    firsts = [int(n.split("-")[1].split(".")[0], 16) for n in names]
    assert firsts[-1] == 31 and max(firsts) > 31
    for after in (12, 30):
        _, replay = await WAL.open(str(tmp_path), after_index=after)
        assert [(e.index, e.term) for e in replay.entries] == [(31, 6), (32, 6), (33, 6)]
        assert replay.last_index == 33
    wal, _ = await WAL.open(str(tmp_path), after_index=30)
    assert await wal.drop_before_snapshot() == []  # only what append_snapshot started this run is known
    assert [e.index for e in await wal.entries_from(31)] == [31, 32, 33]
    await wal.close()

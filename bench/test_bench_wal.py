"""The write-ahead log: group commit under concurrent writers, and the record codec.

Run: cd /work/main && pytest bench/test_bench_wal.py --benchmark-only
Group commit: N trio tasks each append one Entry and await ``sync()``, in a loop, on a real WAL in a
temporary directory. A round is the same number of records at every N, so round times compare
directly; ``extra_info`` carries records/s (from the mean round) and fsyncs per record
(``WAL.fsync_count`` over records: 1.0 means no batching).
The record codec is pure Python (etcdx/wal/record.py); it has no compiled twin yet.
"""

from __future__ import annotations

import itertools

import pytest
import trio

from etcdx.pb.etcdxpb.raft_pb2 import Entry
from etcdx.wal import record
from etcdx.wal.record import RecordType
from etcdx.wal.wal import WAL

PAYLOAD = b"p" * 96  # about the size of a serialized small Put proposal
WRITERS = (1, 16, 256)
RECORDS = 1024  # per round, whatever the writers: round times compare directly
SEGMENT_BYTES = 8 * 1024 * 1024
CODEC_RECORDS = 1000


@pytest.mark.parametrize("writers", WRITERS, ids=[f"{n}-writers" for n in WRITERS])
def test_group_commit(benchmark, tmp_path, writers):
    per_writer = RECORDS // writers
    directories = (tmp_path / f"wal-{n}" for n in itertools.count())
    state: dict = {}

    def open_wal():
        state["wal"], _ = trio.run(lambda: WAL.open(str(next(directories)), segment_bytes=SEGMENT_BYTES))
        return (), {}

    async def write_all() -> None:
        wal = state["wal"]
        indexes = itertools.count(1)

        async def writer() -> None:
            for _ in range(per_writer):
                wal.append([Entry(term=1, index=next(indexes), data=PAYLOAD)])
                await wal.sync()

        async with trio.open_nursery() as nursery:
            for _ in range(writers):
                nursery.start_soon(writer)
        await wal.close()

    benchmark.group = f"wal group commit ({RECORDS} records, each append + sync)"
    benchmark.pedantic(lambda: trio.run(write_all), setup=open_wal, rounds=3, iterations=1)
    wal = state["wal"]
    assert wal.last_index == RECORDS
    benchmark.extra_info["records_per_s"] = round(RECORDS / benchmark.stats.stats.mean)
    benchmark.extra_info["fsyncs_per_record"] = round(wal.fsync_count / RECORDS, 4)


def _records() -> list[bytes]:
    return [Entry(term=3, index=i, data=PAYLOAD).SerializeToString() for i in range(CODEC_RECORDS)]


def test_record_encode(benchmark):
    payloads = _records()

    def encode_all() -> list[bytes]:
        encode = record.encode
        return [encode(RecordType.ENTRY, p) for p in payloads]

    benchmark.group = f"wal record codec ({CODEC_RECORDS} records)"
    assert len(benchmark(encode_all)) == CODEC_RECORDS


def test_record_decode(benchmark):
    buf = b"".join(record.encode(RecordType.ENTRY, p) for p in _records()) + bytes(64)

    def decode_all() -> int:
        offset, count = 0, 0
        while (decoded := record.decode_at(buf, offset)).kind == "record":
            offset, count = decoded.next_offset, count + 1
        return count

    benchmark.group = f"wal record codec ({CODEC_RECORDS} records)"
    assert benchmark(decode_all) == CODEC_RECORDS

"""The write-ahead log: group commit under concurrent writers, replay, and the record codec, each with
the compiled record codec (_native/_walrecord) and its pure-Python twin side by side.

Run: cd /work/main && python setup.py build_ext --inplace && pytest bench/test_bench_wal.py --benchmark-only
- Group commit: N trio tasks each append one Entry and await ``sync()``, in a loop, on a real WAL in a
  temporary directory. A round is the same number of records at every N, so round times compare
  directly; ``extra_info`` carries records/s and fsyncs/s (from the mean round) and fsyncs per record
  (``WAL.fsync_count`` over records: 1.0 means no batching).
- Replay: WAL.open of a log of REPLAY_RECORDS entries (decode every record, parse every Entry).
- Record codec: encode one record at a time, encode a batch into one buffer (what WAL.append does),
  decode a buffer record by record.
The WAL takes its codec from etcdx.wal.record; each case points that at the implementation under test.
The "compiled" case is skipped only when the extension is not built.
"""

from __future__ import annotations

import importlib
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
REPLAY_RECORDS = 20_000
IMPLEMENTATIONS = {"compiled": "etcdx._native._walrecord", "pure": "etcdx._native.walrecord_py"}


@pytest.fixture(params=list(IMPLEMENTATIONS))
def codec(request, monkeypatch):
    """The record codec under test, also installed where the WAL looks it up (etcdx.wal.record)."""
    try:
        module = importlib.import_module(IMPLEMENTATIONS[request.param])
    except ImportError:
        pytest.skip("the _walrecord extension is not built")
    for name in ("encode", "encode_many", "decode_at", "zeros_from"):
        monkeypatch.setattr(record, name, getattr(module, name))
    return module


@pytest.mark.parametrize("writers", WRITERS, ids=[f"{n}-writers" for n in WRITERS])
def test_group_commit(benchmark, tmp_path, codec, writers):
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

    benchmark.group = f"wal group commit at {writers} writers ({RECORDS} records, each append + sync)"
    benchmark.pedantic(lambda: trio.run(write_all), setup=open_wal, rounds=3, iterations=1)
    wal = state["wal"]
    assert wal.last_index == RECORDS
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["records_per_s"] = round(RECORDS / mean)
    benchmark.extra_info["fsyncs_per_s"] = round(wal.fsync_count / mean)
    benchmark.extra_info["fsyncs_per_record"] = round(wal.fsync_count / RECORDS, 4)


@pytest.fixture(scope="module")
def written_wal(tmp_path_factory):
    """A WAL directory holding REPLAY_RECORDS entries, appended 100 to a batch."""
    directory = str(tmp_path_factory.mktemp("replay"))

    async def fill() -> None:
        wal, _ = await WAL.open(directory, segment_bytes=SEGMENT_BYTES)
        for first in range(1, REPLAY_RECORDS + 1, 100):
            wal.append([Entry(term=1, index=i, data=PAYLOAD) for i in range(first, first + 100)])
        await wal.close()

    trio.run(fill)
    return directory


def test_replay(benchmark, codec, written_wal):
    def replay() -> int:
        wal, replayed = WAL._open_sync(written_wal, 0, SEGMENT_BYTES)
        trio.run(wal.close)
        return len(replayed.entries)

    benchmark.group = f"wal replay ({REPLAY_RECORDS} entries, WAL.open)"
    assert benchmark.pedantic(replay, rounds=5, iterations=1) == REPLAY_RECORDS


def _payloads() -> list[bytes]:
    return [Entry(term=3, index=i, data=PAYLOAD).SerializeToString() for i in range(CODEC_RECORDS)]


def test_record_encode(benchmark, codec):
    payloads = _payloads()

    def encode_all() -> list[bytes]:
        encode = codec.encode
        return [encode(RecordType.ENTRY, p) for p in payloads]

    benchmark.group = f"wal record encode ({CODEC_RECORDS} records, one call each)"
    assert len(benchmark(encode_all)) == CODEC_RECORDS


def test_record_encode_many(benchmark, codec):
    payloads = _payloads()
    benchmark.group = f"wal record encode ({CODEC_RECORDS} records, one encode_many)"
    encoded = benchmark(lambda: codec.encode_many(RecordType.ENTRY, payloads))
    assert len(encoded) == sum(record.HEADER_SIZE + 1 + len(p) for p in payloads)


def test_record_decode(benchmark, codec):
    buf = codec.encode_many(RecordType.ENTRY, _payloads()) + bytes(64)

    def decode_all() -> int:
        decode_at = codec.decode_at
        offset, count = 0, 0
        while (decoded := decode_at(buf, offset)).kind == "record":
            offset, count = decoded.next_offset, count + 1
        return count

    benchmark.group = f"wal record decode ({CODEC_RECORDS} records)"
    assert benchmark(decode_all) == CODEC_RECORDS

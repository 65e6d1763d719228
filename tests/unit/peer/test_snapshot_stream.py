"""A snapshot's data in compressed chunks: reassembled exactly, and anything out of line refused."""

import hashlib

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx.pb.etcdxpb import raft_pb2
from etcdx.peer.snapshot_stream import SnapshotAssembler, SnapshotStreamError, chunks


def assemble(data: bytes, pieces, chunk_size: int) -> bytes:
    assembler = SnapshotAssembler(len(data), chunk_size)
    for piece in pieces:
        assembler.add(piece)
    return assembler.result()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=5000), st.integers(1, 700))
def test_data_comes_back_exactly(data, chunk_size):
    pieces = list(chunks(data, chunk_size))
    assert len(pieces) == max(1, -(-len(data) // chunk_size))
    assert [p.last for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert assemble(data, pieces, chunk_size) == data


def test_chunks_are_compressed():
    data = b"key/value " * 100_000
    pieces = list(chunks(data, 64 * 1024))
    assert sum(len(p.data) for p in pieces) < len(data) / 10


def test_a_missing_chunk_is_refused():
    data = bytes(range(256)) * 40
    pieces = list(chunks(data, 1000))
    with pytest.raises(SnapshotStreamError, match="out of order"):
        assemble(data, pieces[:3] + pieces[4:], 1000)


def test_a_corrupt_chunk_is_refused():
    data = bytes(range(256)) * 40
    pieces = list(chunks(data, 1000))
    pieces[2] = raft_pb2.SnapshotChunk(seq=2, data=b"\x00" * 20)
    with pytest.raises(SnapshotStreamError, match="does not decompress"):
        assemble(data, pieces, 1000)


def test_a_wrong_checksum_is_refused():
    data = b"x" * 3000
    pieces = list(chunks(data, 1000))
    pieces[-1].sha256 = hashlib.sha256(b"other").digest()
    with pytest.raises(SnapshotStreamError, match="checksum"):
        assemble(data, pieces, 1000)


def test_a_chunk_claiming_a_huge_size_is_cut_at_the_chunk_size():
    bomb = zstandard.ZstdCompressor().compress(b"\x00" * (8 * 1024 * 1024))  # ~ 300 bytes on the wire
    assembler = SnapshotAssembler(10**12, 1000)
    with pytest.raises(SnapshotStreamError, match="past the declared size"):
        assembler.add(raft_pb2.SnapshotChunk(seq=0, data=bomb))


def test_incomplete_data_has_no_result():
    data = b"y" * 3000
    assembler = SnapshotAssembler(len(data), 1000)
    assembler.add(next(chunks(data, 1000)))
    with pytest.raises(SnapshotStreamError, match="incomplete"):
        assembler.result()


@pytest.mark.parametrize("chunk_size", [0, 16 * 1024 * 1024 + 1, 2**63])
def test_a_chunk_size_out_of_bounds_is_refused(chunk_size):
    with pytest.raises(SnapshotStreamError, match="bad snapshot chunk size"):
        SnapshotAssembler(100, chunk_size)

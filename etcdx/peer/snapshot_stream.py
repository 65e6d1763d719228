"""A snapshot's data as a stream of compressed, checksummed chunks, and its assembly: pure, no I/O.

Contracts:
- ``chunks(data, chunk_size)`` yields SnapshotChunks, each ``chunk_size`` uncompressed bytes (the last may be
  shorter, and empty data gives one empty last chunk) compressed with zstandard on its own; the last carries
  the SHA-256 of all of ``data``.
- ``chunk_size`` is at most MAX_CHUNK_SIZE (a receiver refuses more).
- ``SnapshotAssembler(size, chunk_size)`` accepts exactly that sequence and ``result()`` returns the bytes
  only when the sequence numbers, each chunk's size, the total size and the checksum all agree; anything
  else raises SnapshotStreamError. Decompression is bounded by the declared chunk size, so a hostile chunk
  cannot expand past it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import zstandard

from etcdx.pb.etcdxpb import raft_pb2

DEFAULT_CHUNK_SIZE = 1024 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
"""The largest chunk size a receiver accepts: what one chunk may decompress to."""
ZSTD_LEVEL = 3


class SnapshotStreamError(ValueError):
    """A snapshot data stream that is out of order, too long or short, or corrupt."""


def chunks(data: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[raft_pb2.SnapshotChunk]:
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    view = memoryview(data)
    count = max(1, -(-len(data) // chunk_size))
    digest = hashlib.sha256()
    for seq in range(count):
        piece = view[seq * chunk_size : (seq + 1) * chunk_size]
        digest.update(piece)
        last = seq == count - 1
        yield raft_pb2.SnapshotChunk(
            seq=seq, data=compressor.compress(piece), last=last, sha256=digest.digest() if last else b""
        )


class SnapshotAssembler:
    def __init__(self, size: int, chunk_size: int) -> None:
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise SnapshotStreamError(f"bad snapshot chunk size {chunk_size}")
        self.size = size
        self.chunk_size = chunk_size
        self._decompressor = zstandard.ZstdDecompressor()
        self._data = bytearray()
        self._digest = hashlib.sha256()
        self._next_seq = 0
        self._done = False

    @property
    def chunks_received(self) -> int:
        return self._next_seq

    @property
    def done(self) -> bool:
        return self._done

    def add(self, chunk: raft_pb2.SnapshotChunk) -> None:
        if self._done:
            raise SnapshotStreamError("snapshot chunk after the last one")
        if chunk.seq != self._next_seq:
            raise SnapshotStreamError(f"snapshot chunk {chunk.seq} out of order (expected {self._next_seq})")
        try:
            piece = _bounded_decompress(self._decompressor, chunk.data, self.chunk_size + 1)
        except zstandard.ZstdError as exc:
            raise SnapshotStreamError(f"snapshot chunk {chunk.seq} does not decompress: {exc}") from None
        if len(piece) > self.chunk_size or len(self._data) + len(piece) > self.size:
            raise SnapshotStreamError(f"snapshot chunk {chunk.seq} goes past the declared size {self.size}")
        if not chunk.last and len(piece) != self.chunk_size:
            raise SnapshotStreamError(f"snapshot chunk {chunk.seq} is short ({len(piece)} bytes)")
        self._data += piece
        self._digest.update(piece)
        self._next_seq += 1
        if chunk.last:
            if len(self._data) != self.size:
                raise SnapshotStreamError(f"snapshot data is {len(self._data)} bytes, {self.size} declared")
            if self._digest.digest() != chunk.sha256:
                raise SnapshotStreamError("snapshot data checksum mismatch")
            self._done = True

    def result(self) -> bytes:
        if not self._done:
            raise SnapshotStreamError("snapshot data incomplete")
        return bytes(self._data)


def _bounded_decompress(decompressor: zstandard.ZstdDecompressor, data: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of ``data`` decompressed, whatever size its zstd frame header claims."""
    out = bytearray()
    with decompressor.stream_reader(data) as reader:
        while len(out) < limit:
            piece = reader.read(limit - len(out))
            if not piece:
                break
            out += piece
    return bytes(out)

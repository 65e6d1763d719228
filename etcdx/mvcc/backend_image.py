"""The backend image: every table's rows in one zstandard-compressed byte string (``snapshot()`` of a
backend, what Raft ships to a lagging member, ``restore`` input). Pure.

Layout before compression: MAGIC, then for each table of schema.TABLES in that order: u32 name length,
name, u64 row count, and each row in key order as u32 key length, key, u32 value length, value (all
big-endian). The frame carries zstandard's content size and checksum. Equal tables give equal images
(for one zstandard version), whichever backend wrote them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

import zstandard

from etcdx.mvcc.schema import TABLES

MAGIC = b"etcdx-backend-image-1\n"
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_LEVEL = 3


def encode(scan: Callable[[bytes], Iterable[tuple[bytes, bytes]]]) -> bytes:
    """The image of the tables ``scan(name)`` lists (each in key order)."""
    chunks = [MAGIC]
    add = chunks.append
    for name in TABLES:
        rows = list(scan(name))
        add(_U32.pack(len(name)) + name + _U64.pack(len(rows)))
        for key, value in rows:
            add(_U32.pack(len(key)))
            add(key)
            add(_U32.pack(len(value)))
            add(value)
    return zstandard.ZstdCompressor(level=_LEVEL, write_checksum=True).compress(b"".join(chunks))


def decode(image: bytes) -> dict[bytes, list[tuple[bytes, bytes]]]:
    """Every table's rows in key order; raises ValueError for bytes that are not a whole, valid image."""
    frame = zstandard.ZstdDecompressor().decompressobj()
    try:
        raw = frame.decompress(image)
    except zstandard.ZstdError as exc:
        raise ValueError(f"backend image: {exc}") from exc
    if not frame.eof or frame.unused_data:
        raise ValueError("backend image: not exactly one whole zstandard frame")
    if not raw.startswith(MAGIC):
        raise ValueError("backend image: bad magic")
    tables: dict[bytes, list[tuple[bytes, bytes]]] = {}
    fields = _Reader(raw, len(MAGIC))
    try:
        for name in TABLES:
            if fields.take(fields.u32()) != name:
                raise ValueError(f"backend image: expected table {name!r}")
            rows = tables[name] = []
            previous = None
            for _ in range(fields.u64()):
                key = fields.take(fields.u32())
                if previous is not None and key <= previous:
                    raise ValueError(f"backend image: table {name!r} is not in key order")
                rows.append((key, fields.take(fields.u32())))
                previous = key
    except struct.error as exc:
        raise ValueError("backend image: truncated") from exc
    if fields.pos != len(raw):
        raise ValueError("backend image: trailing bytes")
    return tables


class _Reader:
    def __init__(self, raw: bytes, pos: int) -> None:
        self.raw = memoryview(raw)
        self.pos = pos

    def u32(self) -> int:
        (value,) = _U32.unpack_from(self.raw, self.pos)
        self.pos += 4
        return value

    def u64(self) -> int:
        (value,) = _U64.unpack_from(self.raw, self.pos)
        self.pos += 8
        return value

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.raw):
            raise struct.error("past the end")
        data = bytes(self.raw[self.pos : end])
        self.pos = end
        return data

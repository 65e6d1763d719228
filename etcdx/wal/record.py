"""The WAL record codec (pure: no I/O). A later issue compiles it; this module stays its twin.

A record on disk:

    u32 little-endian  length   number of bytes in type + payload (>= 1; 0 marks the end of data)
    u32 little-endian  crc      zlib.crc32 over type + payload
    u8                 type     RecordType
    bytes              payload  a serialized raft_pb2 message (Entry or HardState)

Segments are preallocated with zeros, so a zero length is where the written data ends.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

HEADER = struct.Struct("<II")
HEADER_SIZE = HEADER.size


class RecordType(enum.IntEnum):
    ENTRY = 1
    HARD_STATE = 2


def encode(record_type: RecordType, payload: bytes) -> bytes:
    body = bytes((record_type,)) + payload
    return HEADER.pack(len(body), zlib.crc32(body)) + body


@dataclass(frozen=True)
class Decoded:
    """What sits at one offset: a record, the end of the data, or a damaged record."""

    kind: str  # "record" | "end" | "bad"
    record_type: int = 0
    payload: bytes = b""
    next_offset: int = 0


def decode_at(buf: bytes | memoryview, offset: int) -> Decoded:
    """Decodes the record starting at ``offset`` of ``buf``.

    "end": a zero length (preallocated space) or fewer than HEADER_SIZE bytes left with all zeros.
    "bad": a record that runs past the buffer or fails its CRC; next_offset is where it would end
    (clamped to the buffer) so a caller can tell a torn tail (only zeros after) from corruption.
    """
    end = len(buf)
    if offset + HEADER_SIZE > end:
        rest = bytes(buf[offset:end])
        return Decoded("end" if not rest.strip(b"\0") else "bad", next_offset=end)
    length, crc = HEADER.unpack_from(buf, offset)
    if length == 0:
        return Decoded("end" if crc == 0 else "bad", next_offset=offset + HEADER_SIZE)
    start = offset + HEADER_SIZE
    stop = start + length
    if stop > end:
        return Decoded("bad", next_offset=end)
    body = bytes(buf[start:stop])
    if zlib.crc32(body) != crc:
        return Decoded("bad", next_offset=stop)
    return Decoded("record", record_type=body[0], payload=body[1:], next_offset=stop)

"""The WAL record codec (the pure-Python twin of _walrecord.pyx); the format is in etcdx/wal/record.py.

A record is ``u32 LE length | u32 LE crc | u8 type | payload`` with length = 1 + len(payload) and crc
= zlib.crc32(type + payload). ``buf`` arguments take anything with the buffer protocol (bytes,
bytearray, memoryview, mmap).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

HEADER = struct.Struct("<II")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 0xFFFFFFFF - 1  # the length field (u32) counts the type byte too


def _check(record_type: int, payload: bytes) -> None:
    if not 0 <= record_type <= 0xFF:
        raise OverflowError(f"record type {record_type} out of range [0, 255]")
    if len(payload) > MAX_PAYLOAD:
        raise OverflowError(f"record payload of {len(payload)} bytes is over {MAX_PAYLOAD}")


def encode(record_type: int, payload: bytes) -> bytes:
    """One record; raises OverflowError for a type outside 0..255 or a payload over MAX_PAYLOAD."""
    _check(record_type, payload)
    body = bytes((record_type,)) + payload
    return HEADER.pack(len(body), zlib.crc32(body)) + body


def encode_many(record_type: int, payloads: Sequence[bytes]) -> bytes:
    """The records of every payload, all of ``record_type``, back to back: b"".join(encode(...) for ...)."""
    return b"".join([encode(record_type, payload) for payload in payloads])


def zeros_from(buf: bytes | memoryview, offset: int) -> bool:
    """Whether every byte of ``buf`` from ``offset`` on is zero (True past the end): preallocated,
    never-written space. A negative offset raises ValueError."""
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    with memoryview(buf) as view:
        rest = view[offset:].tobytes()
    return rest.count(0) == len(rest)


@dataclass(frozen=True)
class Decoded:
    """What sits at one offset: a record, the end of the data, or a damaged record."""

    kind: str  # "record" | "end" | "bad"
    record_type: int = 0
    payload: bytes = b""
    next_offset: int = 0


def decode_at(buf: bytes | memoryview, offset: int) -> Decoded:
    """Decodes the record starting at ``offset`` of ``buf`` (0 <= offset, else ValueError).

    "end": a zero length with a zero CRC (preallocated space), or fewer than HEADER_SIZE bytes left,
    all zeros. "bad": a record that runs past the buffer, fails its CRC, has a zero length with a
    non-zero CRC, or a short non-zero remainder; next_offset is where it would end (clamped to the
    buffer) so a caller can tell a torn tail (only zeros after) from corruption.
    """
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
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

"""The WAL record format, and its codec: compiled (_native/_walrecord.pyx) or the pure-Python twin
(_native/walrecord_py.py), whichever ``etcdx._native.load`` picks.

A record on disk:

    u32 little-endian  length   number of bytes in type + payload (>= 1; 0 marks the end of data)
    u32 little-endian  crc      zlib.crc32 over type + payload
    u8                 type     RecordType
    bytes              payload  a serialized raft_pb2 message (Entry or HardState; an Entry with only index
                                and term for SNAPSHOT); empty for SYNC_START

Segments are preallocated with zeros, so a zero length is where the written data ends.

The codec: ``encode(type, payload)`` -> one record; ``encode_many(type, payloads)`` -> their records
back to back in one buffer; ``decode_at(buf, offset)`` -> a ``Decoded`` whose kind is "record" (with
record_type, payload and next_offset), "end" (zeros: the data ends here) or "bad" (a torn or corrupt
record; next_offset is where it would end, clamped to the buffer); ``zeros_from(buf, offset)`` -> whether
only zeros follow (never-written space).
"""

from __future__ import annotations

import enum

from etcdx._native import load

_codec = load("walrecord")

HEADER_SIZE: int = _codec.HEADER_SIZE
Decoded = _codec.Decoded
encode = _codec.encode
encode_many = _codec.encode_many
decode_at = _codec.decode_at
zeros_from = _codec.zeros_from


class RecordType(enum.IntEnum):
    ENTRY = 1
    HARD_STATE = 2
    SYNC_START = 3  # empty; the first record of each write-and-fsync job (what came before it was durable)
    SNAPSHOT = 4  # an Entry holding only (index, term): the log restarts after a snapshot installed there

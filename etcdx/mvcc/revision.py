"""Revisions: (main, sub) packed into one int for the index, and etcd's 17-byte backend key form.

main is the store revision of a write transaction; sub numbers the changes inside it (0, 1, ...).
Packed: main << 32 | sub, so packed order is revision order.
"""

from __future__ import annotations

import struct

_BACKEND_KEY = struct.Struct(">Q1sQ")
_unpack_backend_key = struct.Struct(">QxQ").unpack_from  # the same layout; the separator byte is not read
_TOMBSTONE_KEY_SIZE = _BACKEND_KEY.size + 1
SUB_BITS = 32
SUB_MASK = (1 << SUB_BITS) - 1
TOMBSTONE_MARK = b"t"


def pack(main: int, sub: int) -> int:
    return (main << SUB_BITS) | sub


def main_of(rev: int) -> int:
    return rev >> SUB_BITS


def last_of_main(main: int) -> int:
    """The largest packed revision whose main is ``main``: bisect bound for "main <= x"."""
    return (main << SUB_BITS) | SUB_MASK


def backend_key(rev: int, tombstone: bool = False) -> bytes:
    """etcd's key-bucket key: 8-byte big-endian main, b"_", 8-byte big-endian sub, b"t" if a tombstone."""
    key = _BACKEND_KEY.pack(rev >> SUB_BITS, b"_", rev & SUB_MASK)
    return key + TOMBSTONE_MARK if tombstone else key


def parse_backend_key(key: bytes) -> tuple[int, bool]:
    """Inverse of ``backend_key``: (packed revision, is tombstone)."""
    main, sub = _unpack_backend_key(key)
    return (main << SUB_BITS) | sub, len(key) == _TOMBSTONE_KEY_SIZE

"""Key-range arithmetic shared by the store, the recipes and the tools (pure)."""

from __future__ import annotations


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for every key starting with ``prefix``: drop trailing 0xff bytes and increment
    the last one; a prefix of only 0xff bytes (or empty) gives b"\\x00", i.e. "to the end"."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"
    return stripped[:-1] + bytes([stripped[-1] + 1])

"""Unsigned 64-bit words shared by the member and its read workers through a memory-mapped file (mode 0600).

Each word is aligned and stored and loaded whole (a memoryview cast to 'Q' copies it with one native access), so
a reader in another process never sees a torn word. Which process writes which word is the user's contract
(applied_mark.py, served_counts.py).
"""

from __future__ import annotations

import mmap
import os


class SharedWords:
    """``count`` words of one file; ``words[i]`` reads or (if writable) stores word i."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self._mapped = mapped
        self.words = memoryview(mapped).cast("Q")

    @classmethod
    def create(cls, path: str, count: int) -> SharedWords:
        """``count`` zero words in the file ``path`` (made if missing), mapped read-write. An existing file is
        not truncated first, but sized and then zeroed in place: a process still mapping it (a worker of the
        member's previous run) never touches pages past its end (SIGBUS), it reads zeros."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, _size(count))
            shared = cls(mmap.mmap(fd, _size(count), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE))
        finally:
            os.close(fd)
        for i in range(len(shared.words)):
            shared.words[i] = 0
        return shared

    @classmethod
    def open(cls, path: str, count: int, writable: bool) -> SharedWords:
        """An existing file of at least ``count`` words (made by ``create``)."""
        fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        try:
            protection = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            return cls(mmap.mmap(fd, _size(count), mmap.MAP_SHARED, protection))
        finally:
            os.close(fd)

    def close(self) -> None:
        self.words.release()
        self._mapped.close()


def _size(count: int) -> int:
    """Whole pages holding ``count`` words (at least one page)."""
    pages = max(1, -(-count * 8 // mmap.PAGESIZE))
    return pages * mmap.PAGESIZE

"""The member's applied index, shared with its read workers through a small memory-mapped file.

Contract: the member publishes its applied index after each apply step and before it answers any request that
step applied (server.py, ``EtcdServer.on_applied``). A worker that reads the mark when a read arrives therefore
holds a number at least as large as the index of every write acknowledged before then, through any process.
A worker's snapshot (the member's last committed state) whose applied index is below the mark may miss such a
write: the read waits for a barrier (local_range.py) rather than being answered from it.

The mark only grows while a member runs. It is one aligned 8-byte word at the start of the file, stored and
loaded whole (a memoryview cast to 'Q' copies it with one native access), so a reader never sees a torn value.
A reader that sees an older value is safe: the read only waits for a barrier it did not need.
"""

from __future__ import annotations

import mmap
import os

MARK_NAME = "applied.mark"
_SIZE = mmap.PAGESIZE


def mark_path(socket_path: str) -> str:
    """The mark's file, beside the member's private socket ``socket_path``."""
    return os.path.join(os.path.dirname(socket_path), MARK_NAME)


class AppliedMark:
    """One side of the mark: the member's (``create``, read-write) or a worker's (``open``, read-only)."""

    def __init__(self, mapped: mmap.mmap, writable: bool) -> None:
        self._mapped = mapped
        self._word = memoryview(mapped).cast("Q")
        self._writable = writable

    @classmethod
    def create(cls, path: str, index: int) -> AppliedMark:
        """The member's side: a new file holding ``index`` (the member's applied index when it starts)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, _SIZE)
            mark = cls(mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE), writable=True)
        finally:
            os.close(fd)
        mark.publish(index)
        return mark

    @classmethod
    def open(cls, path: str) -> AppliedMark:
        """A worker's side, read-only."""
        fd = os.open(path, os.O_RDONLY)
        try:
            return cls(mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ), writable=False)
        finally:
            os.close(fd)

    def publish(self, index: int) -> None:
        assert self._writable
        self._word[0] = index

    def read(self) -> int:
        return self._word[0]

    def close(self) -> None:
        self._word.release()
        self._mapped.close()

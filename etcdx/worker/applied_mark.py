"""The member's applied index, shared with its read workers through a small memory-mapped file.

Contract: the member publishes its applied index after each apply step and before it answers any request that
step applied (server.py, ``EtcdServer.on_applied``). A worker that reads the mark when a read arrives therefore
holds a number at least as large as the index of every write acknowledged before then, through any process.
A worker's snapshot (the member's last committed state) whose applied index is below the mark may miss such a
write: the read waits for a barrier (local_range.py) rather than being answered from it.

The mark only grows while a member runs. It is one aligned 8-byte word at the start of the file, stored and
loaded whole (shared_words.py), so a reader never sees a torn value.
A reader that sees an older value is safe: the read only waits for a barrier it did not need.
"""

from __future__ import annotations

import os

from etcdx.worker.shared_words import SharedWords

MARK_NAME = "applied.mark"


def mark_path(socket_path: str) -> str:
    """The mark's file, beside the member's private socket ``socket_path``."""
    return os.path.join(os.path.dirname(socket_path), MARK_NAME)


class AppliedMark:
    """One side of the mark: the member's (``create``, read-write) or a worker's (``open``, read-only)."""

    def __init__(self, shared: SharedWords, writable: bool) -> None:
        self._shared = shared
        self._word = shared.words
        self._writable = writable

    @classmethod
    def create(cls, path: str, index: int) -> AppliedMark:
        """The member's side: a new file holding ``index`` (the member's applied index when it starts)."""
        mark = cls(SharedWords.create(path, 1), writable=True)
        mark.publish(index)
        return mark

    @classmethod
    def open(cls, path: str) -> AppliedMark:
        """A worker's side, read-only."""
        return cls(SharedWords.open(path, 1, writable=False), writable=False)

    def publish(self, index: int) -> None:
        assert self._writable
        self._word[0] = index

    def read(self) -> int:
        return self._word[0]

    def close(self) -> None:
        self._shared.close()

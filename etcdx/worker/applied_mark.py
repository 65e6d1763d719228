"""The member's applied index, shared with its read workers through a small memory-mapped file.

Contract: the member publishes its applied index after each apply step and before it answers any request that
step applied (server.py, ``EtcdServer.on_applied``). A worker that reads the mark when a read arrives therefore
holds a number at least as large as the index of every write acknowledged before then, through any process.
A worker's snapshot (the member's last committed state) whose applied index is below the mark may miss such a
write: the read waits for a barrier (local_range.py) rather than being answered from it.

Beside the mark, the member publishes whether it leads alone: it is the only voter, leads, and has applied its
term's first entry (so every entry of an earlier term, each write acknowledged before, is applied and within the
mark). It publishes that with the mark after each apply step and whenever its role changes, so before it sends
any message that could let another member lead (a vote), and before anything it applies with a change of the
voters is answered. While a worker reads it set, a read arriving then is linearizable when served from a
snapshot that reaches the mark read after it: no other member can have led or acknowledged a write, so the
writes completed before the read are the member's, within the mark (Raft thesis §6.4: a lone voter's read index
is its own commit index, and the entries committed but not applied are writes no one was answered yet).

The mark only grows while a member runs. The mark and "alone" (its top bit: an applied index stays below 2**63)
are one aligned 8-byte word, stored and loaded whole (shared_words.py), so a reader never sees a torn value nor
"alone" from one publication with the mark of another, on any CPU's memory ordering. A reader that sees an
older word is safe: if "alone" was set then and has been cleared since, the member cleared it before it sent
anything that could let another member lead; otherwise the read only waits for a barrier it did not need.
"""

from __future__ import annotations

import os

from etcdx.worker.shared_words import SharedWords

MARK_NAME = "applied.mark"
_ALONE = 1 << 63  # the word's top bit: the member leads alone; the bits below hold the mark
_WORDS = 1


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
        mark = cls(SharedWords.create(path, _WORDS), writable=True)
        mark.publish(index, alone=False)
        return mark

    @classmethod
    def open(cls, path: str) -> AppliedMark:
        """A worker's side, read-only."""
        return cls(SharedWords.open(path, _WORDS, writable=False), writable=False)

    def publish(self, index: int, alone: bool) -> None:
        """The member's applied index (below 2**63), and whether it leads alone (module doc), in one store."""
        assert self._writable and 0 <= index < _ALONE
        self._word[0] = index | _ALONE if alone else index

    def read(self) -> int:
        return self._word[0] & ~_ALONE

    def read_if_alone(self) -> int | None:
        """The mark, if the member leads alone (read in the same load); None otherwise."""
        word = self._word[0]
        return word & ~_ALONE if word & _ALONE else None

    def close(self) -> None:
        self._shared.close()

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

The mark only grows while a member runs. Each value is one aligned 8-byte word, stored and loaded whole
(shared_words.py), so a reader never sees a torn value. A reader that sees an older mark is safe: the read
only waits for a barrier it did not need. A reader that sees "alone" set just after the member cleared it is
too: the member clears it before it sends anything that could let another member lead.
"""

from __future__ import annotations

import os

from etcdx.worker.shared_words import SharedWords

MARK_NAME = "applied.mark"
_MARK, _ALONE, _WORDS = 0, 1, 2  # word positions, and how many there are


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
        """The member's applied index, and whether it leads alone (module doc); the word "alone" is stored
        last, so a reader that sees it set reads a mark at least as new as the one published with it."""
        assert self._writable
        self._word[_MARK] = index
        self._word[_ALONE] = 1 if alone else 0

    def read(self) -> int:
        return self._word[_MARK]

    def read_if_alone(self) -> int | None:
        """The mark, read after "alone" was seen set; None while the member does not lead alone."""
        if not self._word[_ALONE]:
            return None
        return self._word[_MARK]

    def close(self) -> None:
        self._shared.close()

"""The log store the core reads from, as a Protocol, and an in-memory implementation of it.

The shell writes to storage (entries, hard state, snapshots) and makes the writes durable; the core only
reads. Contract: when the shell calls RawNode.on_persisted(n), everything in Ready n is readable here.
"""

from __future__ import annotations

from typing import Protocol

from etcdx._native import load
from etcdx.raft.errors import CompactedError, InvariantViolation, SnapshotTemporarilyUnavailableError, UnavailableError
from etcdx.raft.messages import ConfState, Entry, EntryType, HardState, Snapshot


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted HardState, and the membership as of the last snapshot."""

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi), at least one if any, then as many as fit in max_size bytes.
        Raises CompactedError if lo <= the snapshot index, UnavailableError if hi > last_index() + 1."""

    def term(self, index: int) -> int:
        """The term of the entry at `index`; valid from first_index() - 1 (the snapshot's term) to last_index()."""

    def first_index(self) -> int:
        """The index of the first entry still held (the snapshot index + 1)."""

    def last_index(self) -> int:
        """The index of the last entry held (the snapshot index if none)."""

    def snapshot(self) -> Snapshot:
        """The most recent snapshot; may raise SnapshotTemporarilyUnavailableError."""


def limit_size(entries: list[Entry], max_size: int | None) -> list[Entry]:
    """The longest prefix within max_size bytes, and never fewer than one entry."""
    if max_size is None or len(entries) <= 1:
        return entries
    total = 0
    for n, entry in enumerate(entries):
        total += entry.size()
        if n > 0 and total > max_size:
            return entries[:n]
    return entries


_NORMAL, _CONF_CHANGE = EntryType.NORMAL, EntryType.CONF_CHANGE


def _stored(e: Entry) -> tuple[int, int, bool, bytes]:
    return (e.term, e.index, e.type is _CONF_CHANGE, e.data)


untrack = load("gctrack").untrack


def _entries(stored: list[tuple[int, int, bool, bytes]]) -> list[Entry]:
    """The Entry each stored tuple holds, built with tuple.__new__ (the same Entry as Entry(...), without the
    NamedTuple's Python-level __new__: every committed entry is read back once)."""
    new, normal, conf_change = tuple.__new__, _NORMAL, _CONF_CHANGE
    return [new(Entry, (term, index, conf_change if cc else normal, data)) for term, index, cc, data in stored]


class MemoryStorage:
    """Storage held in lists. Invariant: self._entries[0] is a dummy at the snapshot's (index, term), and
    self._entries[k] holds index self._entries[0]'s index + k.

    Stored entries are plain tuples (term, index, is a conf change, data) of atomic values, turned back into
    Entry when read: the cyclic GC stops tracking such a tuple the first time it sees it, where every Entry (a
    tuple subclass that holds an enum member) would be traversed by each full collection. The list itself is
    untracked too (it holds only those tuples: no cycle can pass through it), so a long log (up to
    --snapshot-count entries on a member) costs the collector nothing: walked, its 80,000 entries added about 2
    ms to every collection of the oldest generation (measured in a member)."""

    def __init__(self, conf_state: ConfState | None = None) -> None:
        """An empty log; conf_state is the initial membership of a new cluster (held as a snapshot at 0)."""
        self.hard_state = HardState()
        self._snapshot = Snapshot(conf_state=conf_state or ConfState())
        self._entries: list[tuple[int, int, bool, bytes]] = untrack([(0, 0, False, b"")])
        self.snapshot_unavailable = False
        """Set by tests to make snapshot() fail as a busy store would."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self._snapshot.conf_state

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def _offset(self) -> int:
        return self._entries[0][1]

    def first_index(self) -> int:
        return self._entries[0][1] + 1

    def last_index(self) -> int:
        return self._entries[-1][1]

    def term(self, index: int) -> int:
        offset = self._entries[0][1]
        if index < offset:
            raise CompactedError(index)
        if index > self._entries[-1][1]:
            raise UnavailableError(index)
        return self._entries[index - offset][0]

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        offset = self._entries[0][1]
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self._entries[-1][1] + 1:
            raise UnavailableError(hi)
        stored = self._entries[lo - offset : hi - offset]
        if max_size is not None and len(stored) > 1:  # limit_size's rule, on the stored form
            total = 0
            for n, t in enumerate(stored):
                total += len(t[3]) + 16
                if n > 0 and total > max_size:
                    stored = stored[:n]
                    break
        return _entries(stored)

    def snapshot(self) -> Snapshot:
        if self.snapshot_unavailable:
            raise SnapshotTemporarilyUnavailableError()
        return self._snapshot

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Store entries; an entry at an index already held replaces it and everything after (Raft §5.3)."""
        if not entries:
            return
        first = entries[0].index
        offset = self._offset()
        if first <= offset:  # the snapshot already covers some of them
            entries = [e for e in entries if e.index > offset]
            if not entries:
                return
            first = entries[0].index
        if first > self.last_index() + 1:
            raise InvariantViolation(f"gap: appending at {first} after last index {self.last_index()}")
        del self._entries[first - offset :]
        self._entries.extend(map(_stored, entries))

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace everything with the snapshot (a follower installing one sent by the leader)."""
        if snap.index <= self._snapshot.index:
            raise CompactedError(snap.index)
        self._snapshot = snap
        self._entries = untrack([(snap.term, snap.index, False, b"")])

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record the state machine at `index` (applied there) as the current snapshot; entries stay."""
        if index <= self._snapshot.index:
            raise CompactedError(index)
        if index > self.last_index():
            raise InvariantViolation(f"snapshot at {index} beyond last index {self.last_index()}")
        self._snapshot = Snapshot(index=index, term=self.term(index), conf_state=conf_state, data=data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Drop entries up to and including `index` (which must be covered by a snapshot or be applied)."""
        offset = self._offset()
        if index <= offset:
            raise CompactedError(index)
        if index > self.last_index():
            raise InvariantViolation(f"compacting to {index} beyond last index {self.last_index()}")
        kept = [(self._entries[index - offset][0], index, False, b"")] + self._entries[index - offset + 1 :]
        self._entries = untrack(kept)

"""The consensus seam for a single voting member, in the shape of a Raft RawNode.

``propose`` appends to the unstable tail; ``ready`` hands out what must be persisted and what is
committed; ``advance`` reports that a Ready was handled. With one voter, an entry is committed as
soon as it is persisted (a quorum of one). The Raft issue replaces this class with the real core
behind the same propose / ready / advance contract, and the server's Ready loop stays as it is.

Pure: no I/O, no clock. Invariants: persisted_index <= last_index; commit == persisted_index;
committed entries are handed out once, in order; indexes are contiguous from 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from etcdx.pb.etcdxpb.raft_pb2 import Entry, HardState


@dataclass
class Ready:
    """One batch of work for the server: persist ``entries`` and ``hard_state``, then apply ``committed``."""

    entries: list[Entry] = field(default_factory=list)
    hard_state: HardState | None = None
    committed: list[Entry] = field(default_factory=list)


class LocalLog:
    """A log with a single voter: term bumps once per start (its own election), as Raft's would.

    A fresh member starts at term 2, as etcd's does (term 1 is its bootstrap, term 2 its first election).
    """

    def __init__(self, hard_state: HardState | None, last_index: int, last_term: int) -> None:
        previous_term = hard_state.term if hard_state is not None else 0
        self.term = max(previous_term, last_term, 1) + 1
        self.last_index = last_index
        self.commit = last_index
        self._unstable: list[Entry] = []
        self._committed: list[Entry] = []
        self._hard_state_dirty = True
        # A new leader's first entry is an empty one of its own term (Raft §8): it commits the term.
        self._append(b"")

    def _append(self, data: bytes) -> int:
        self.last_index += 1
        self._unstable.append(Entry(term=self.term, index=self.last_index, data=data))
        return self.last_index

    def propose(self, data: bytes) -> int:
        """Appends ``data`` as a new entry and returns its index."""
        return self._append(data)

    def has_ready(self) -> bool:
        return bool(self._unstable or self._committed or self._hard_state_dirty)

    def ready(self) -> Ready:
        """Everything to persist and to apply now; hand the result back to ``advance`` once done."""
        rd = Ready(entries=self._unstable, committed=self._committed)
        if self._hard_state_dirty or self._unstable:
            commit = self._unstable[-1].index if self._unstable else self.commit
            rd.hard_state = HardState(term=self.term, vote=1, commit=commit)
        self._unstable, self._committed = [], []
        self._hard_state_dirty = False
        return rd

    def advance(self, rd: Ready) -> None:
        """``rd.entries`` are durable now, so (one voter) they are committed and become applicable."""
        if rd.entries:
            self.commit = rd.entries[-1].index
            self._committed.extend(rd.entries)

"""The Raft log as the core sees it: what storage holds, plus an unstable tail not yet known durable.

Positions along the log (Invariants, checked by check_invariants):
  applied <= applying <= committed;  applying <= persisted  (only durable entries are handed out to apply);
  committed <= last_index();  first_index() - 1 <= applied.
An entry at index i is durable once the Ready carrying it is persisted; `persisted` is the highest such index
whose term still matches the log (a later overwrite of the same index in a newer term does not count).
"""

from __future__ import annotations

from etcdx.raft.errors import CompactedError, InvariantViolation, UnavailableError
from etcdx.raft.messages import Entry, Snapshot
from etcdx.raft.storage import Storage, limit_size


class Unstable:
    """Entries (and maybe a snapshot) appended but not yet confirmed durable by the shell.

    Invariant: entries[k].index == offset + k; if snapshot is set, offset == snapshot.index + 1.
    in_progress is the last index already handed to a Ready (offset - 1 when none).
    """

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset
        self.in_progress = offset - 1
        self.snapshot_in_progress = False

    def maybe_term(self, index: int) -> int | None:
        if index < self.offset:
            if self.snapshot is not None and self.snapshot.index == index:
                return self.snapshot.term
            return None
        k = index - self.offset
        return self.entries[k].term if k < len(self.entries) else None

    def last_index(self) -> int | None:
        if self.entries:
            return self.entries[-1].index
        return self.snapshot.index if self.snapshot is not None else None

    def truncate_and_append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        if first == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif first <= self.offset:
            # Everything unstable is replaced; the new run starts at or before the old start.
            self.offset = first
            self.entries = list(entries)
        else:
            del self.entries[first - self.offset :]
            self.entries.extend(entries)
        self.in_progress = min(self.in_progress, first - 1)

    def stable_to(self, index: int, term: int) -> bool:
        """The entries up to (index, term) are durable; drop them. Ignored if that entry was since replaced."""
        if self.maybe_term(index) != term or index < self.offset:
            return False
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1
        self.in_progress = max(self.in_progress, index)
        return True

    def restore(self, snap: Snapshot) -> None:
        self.snapshot = snap
        self.entries = []
        self.offset = snap.index + 1
        self.in_progress = snap.index
        self.snapshot_in_progress = False


class RaftLog:
    def __init__(self, storage: Storage, max_applying_size: int | None = None) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        """Highest index known committed. Invariant: committed <= last_index()."""
        self.applying = first - 1
        """Highest index handed to the shell to apply. Invariant: applied <= applying <= committed."""
        self.applied = first - 1
        """Highest index the shell reported applied."""
        self.persisted = last
        """Highest index known durable with its current term. Invariant: applying <= persisted."""
        self.max_applying_size = max_applying_size

    # -- positions -----------------------------------------------------------------------------------------
    def first_index(self) -> int:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        last = self.unstable.last_index()
        return last if last is not None else self.storage.last_index()

    def term(self, index: int) -> int:
        """The term at index; raises CompactedError / UnavailableError outside [first_index() - 1, last_index()]."""
        u = self.unstable
        if index < u.offset and u.snapshot is None:
            # Below the unstable tail with no pending snapshot: storage's bounds are the log's there (its first
            # index is the log's, and an index past its last is past the log's too), so it answers alone.
            return self.storage.term(index)
        term = u.maybe_term(index)
        if term is not None:
            return term
        if index > self.last_index():
            raise UnavailableError(index)
        if index < self.first_index() - 1:
            raise CompactedError(index)
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Whether a log ending at (last_index, term) is at least as up-to-date as ours (Raft §5.4.1)."""
        my_term = self.last_term()
        return term > my_term or (term == my_term and last_index >= self.last_index())

    # -- reading entries -----------------------------------------------------------------------------------
    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi) within max_size bytes (at least one). Raises CompactedError below first_index()."""
        if lo > hi:
            raise InvariantViolation(f"slice lo {lo} > hi {hi}")
        if lo < self.first_index():
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        if lo == hi:
            return []
        result: list[Entry] = []
        u = self.unstable
        if lo < u.offset:
            result = self.storage.entries(lo, min(hi, u.offset), max_size)
            if len(result) < min(hi, u.offset) - lo:
                return result  # the size cap cut the stored part short
        if hi > u.offset:
            result = result + u.entries[max(lo, u.offset) - u.offset : hi - u.offset]
        return limit_size(result, max_size)

    def entries_from(self, lo: int, max_size: int | None = None) -> list[Entry]:
        if lo > self.last_index():
            return []
        return self.slice(lo, self.last_index() + 1, max_size)

    def all_entries(self) -> list[Entry]:
        return self.entries_from(self.first_index())

    # -- changing the log ----------------------------------------------------------------------------------
    def append(self, entries: list[Entry]) -> int:
        """Append (overwriting from entries[0].index on). Committed entries can never be overwritten."""
        if not entries:
            return self.last_index()
        first = entries[0].index
        if first - 1 < self.committed:
            raise InvariantViolation(f"overwriting committed entries: append at {first}, committed {self.committed}")
        self.unstable.truncate_and_append(entries)
        if self.persisted >= first:
            self.persisted = first - 1
        return self.last_index()

    def find_conflict(self, entries: tuple[Entry, ...] | list[Entry]) -> int:
        """The index of the first entry whose term differs from ours or that we lack; 0 if all match."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest (i, t) with i <= index and t <= term in our log: where a leader's probe may resume
        (the fast log backtracking of Raft thesis §5.3 / etcd's MsgAppResp reject hint)."""
        while index > 0:
            try:
                our_term = self.term(index)
            except (CompactedError, UnavailableError):
                break
            if our_term <= term:
                return index, our_term
            index -= 1
        return index, 0

    def maybe_append(self, index: int, log_term: int, commit: int, entries: tuple[Entry, ...]) -> int | None:
        """A leader's append after (index, log_term): None if our log does not hold that entry (Raft §5.3's
        consistency check), else the last index the message covers, with commit advanced to min(commit, it)."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise InvariantViolation(f"entry {conflict} conflicts with a committed one (commit {self.committed})")
            self.append(list(entries[conflict - entries[0].index :]))
        self.commit_to(min(commit, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise InvariantViolation(f"commit {index} beyond last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit up to index if it is past committed and its entry is of `term`, the leader's own term:
        a leader never commits an older term's entry by counting replicas (Raft §5.4.2)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def restore(self, snap: Snapshot) -> None:
        self.committed = snap.index
        self.unstable.restore(snap)
        self.persisted = min(self.persisted, snap.index - 1) if self.persisted >= snap.index else self.persisted

    # -- handing out work ----------------------------------------------------------------------------------
    def has_next_unstable(self) -> bool:
        entries = self.unstable.entries  # when there are any, the last of them is the log's last index
        return bool(entries) and self.unstable.in_progress < entries[-1].index

    def next_unstable(self) -> list[Entry]:
        u = self.unstable
        return u.entries[u.in_progress + 1 - u.offset :]

    def accept_unstable(self) -> tuple[int, int] | None:
        """Mark the unstable tail as handed to a Ready; returns the (index, term) it ends at, if any."""
        u = self.unstable
        if not u.entries or u.in_progress >= u.entries[-1].index:
            return None
        u.in_progress = u.entries[-1].index
        return u.entries[-1].index, u.entries[-1].term

    def has_next_committed(self) -> bool:
        return self.applying < min(self.committed, self.persisted) and self.applying + 1 >= self.first_index()

    def next_committed(self) -> list[Entry]:
        hi = min(self.committed, self.persisted)
        if self.applying >= hi or self.applying + 1 < self.first_index():
            return []  # nothing new, or a snapshot must be applied first
        return self.slice(self.applying + 1, hi + 1, self.max_applying_size)

    def accept_applying(self, index: int) -> None:
        self.applying = max(self.applying, index)

    def stable_to(self, index: int, term: int) -> None:
        if self.unstable.stable_to(index, term) or self.match_term(index, term):
            self.persisted = max(self.persisted, index)

    def stable_snapshot_to(self, index: int) -> None:
        u = self.unstable
        if u.snapshot is not None and u.snapshot.index == index:
            u.snapshot = None
            u.snapshot_in_progress = False
            self.persisted = max(self.persisted, index)
            self.applying = max(self.applying, index)
            self.applied = max(self.applied, index)

    def applied_to(self, index: int) -> None:
        if index < self.applied or index > self.committed:
            raise InvariantViolation(f"applied {index} outside [{self.applied}, {self.committed}]")
        self.applied = index
        self.applying = max(self.applying, index)

    def check_invariants(self) -> None:
        if not (self.applied <= self.applying <= self.committed <= self.last_index()):
            raise InvariantViolation(
                f"applied {self.applied} applying {self.applying} committed {self.committed} last {self.last_index()}"
            )
        if self.applying > max(self.persisted, self.first_index() - 1):
            raise InvariantViolation(f"applying {self.applying} beyond persisted {self.persisted}")

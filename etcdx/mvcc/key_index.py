"""The key index (etcd's treeIndex): key -> generations of revisions, in an ordered B+tree map.

A generation is the life of a key from its creation to its deletion: the revisions of its puts, and
for every generation but the current one a final tombstone revision. A key whose current generation
is empty does not exist now.

Pure: no I/O. Revisions are packed ints (see revision.py).

Out of the cyclic collector: the per-key objects (SingleRevision, KeyHistory, Generation and their lists) hold
only ints and lists of ints and of each other, never anything that refers back, so they are never part of a
reference cycle, and each is taken out of the collector's view when made (``untrack``, _native/_gctrack.pyx;
compiled only; the B+tree keeps its nodes out too).
Otherwise every collection of the oldest generation walks every key written since start-up (the member
freezes what it loaded at start): measured, 36 to 47 ms with about 100,000 keys, a pause of the whole event
loop, 19 times in 8 s of writes.
"""

from __future__ import annotations

import bisect

from etcdx._native import load
from etcdx.mvcc.revision import SUB_BITS, last_of_main, main_of

_NO_LIMIT = (1 << 63) - 1  # the largest RangeRequest.limit (int64): a page of every key

SortedMap = load("btree").SortedMap
untrack = load("gctrack").untrack


class Generation:
    """An ended generation. Invariant: revs ascending and never empty (the last one is the tombstone that
    ended it); ``version`` is the version of revs[-1] (a tombstone counts, as in etcd); ``created`` is the main
    revision that created the key in this generation."""

    __slots__ = ("created", "version", "revs")

    def __init__(self, created: int, version: int, revs: list[int]) -> None:
        self.created = created
        self.version = version
        self.revs = untrack(revs)
        untrack(self)

    def version_at(self, position: int) -> int:
        return self.version - (len(self.revs) - 1 - position)


class KeyHistory:
    """One key's generations. The current generation is held inline (one object and one list per key, the
    common case at scale: the index is most of a member's memory): ``created``, ``version`` and ``revs`` as a
    Generation's, ``revs`` empty while the key does not exist now. ``past``: the ended generations, oldest
    first, or None when there are none."""

    __slots__ = ("created", "version", "revs", "past")

    def __init__(self, created: int = 0, version: int = 0, revs: list[int] | None = None) -> None:
        self.created = created
        self.version = version
        self.revs: list[int] = untrack([] if revs is None else revs)
        self.past: list[Generation] | None = None
        untrack(self)

    def put(self, rev: int) -> tuple[int, int]:
        """Records a put at ``rev``; returns (create main revision, version) of the new value."""
        if self.revs:
            self.revs.append(rev)
        else:
            self.created = main_of(rev)
            self.revs = untrack([rev])
        self.version += 1
        return self.created, self.version

    def restore(self, rev: int, created: int, version: int) -> None:
        """Rebuilds from the backend: a value read back with its stored create revision and version."""
        if self.revs:
            self.revs.append(rev)
        else:
            self.created = created
            self.revs = untrack([rev])
        self.version = version

    def tombstone(self, rev: int) -> None:
        """Ends the current generation at ``rev``. Caller guarantees the key exists now."""
        self.revs.append(rev)
        ended = Generation(self.created, self.version + 1, self.revs)
        if self.past is None:
            self.past = untrack([ended])
        else:
            self.past.append(ended)
        self.created, self.version, self.revs = 0, 0, untrack([])

    def is_live(self) -> bool:
        return bool(self.revs)

    def find(self, at_main: int) -> tuple[int, int, int] | None:
        """(revision, create main revision, version) of the value visible at ``at_main``, or None."""
        bound = last_of_main(at_main)
        revs = self.revs
        if revs and revs[0] <= bound:
            i = bisect.bisect_right(revs, bound) - 1
            return revs[i], self.created, self.version - (len(revs) - 1 - i)
        if self.past is not None:
            for gen in reversed(self.past):
                revs = gen.revs
                if revs[0] > bound:
                    continue
                i = bisect.bisect_right(revs, bound) - 1
                if i == len(revs) - 1:
                    return None  # the visible revision is this generation's tombstone
                return revs[i], gen.created, gen.version_at(i)
        return None

    def _first_reaching(self, bound: int) -> tuple[int, list[int], bool]:
        """(g, revs, ended): the oldest generation whose last revision is above ``bound`` (the current one if
        no ended one is): its position in ``past`` (len(past) for the current one), its revs, and whether it
        is an ended one."""
        past = self.past
        if past is not None:
            for g, gen in enumerate(past):
                if gen.revs[-1] > bound:
                    return g, gen.revs, True
            return len(past), self.revs, False
        return 0, self.revs, False

    def keep(self, at_main: int, keep: set[int]) -> None:
        """Adds to ``keep`` the revision a compaction at ``at_main`` would keep (etcd's keyIndex.keep), if any;
        changes nothing."""
        bound = last_of_main(at_main)
        _, revs, ended = self._first_reaching(bound)
        i = bisect.bisect_right(revs, bound) - 1
        if i >= 0 and not (i == len(revs) - 1 and ended):
            keep.add(revs[i])

    def compact(self, at_main: int, keep: set[int]) -> bool:
        """Drops history older than ``at_main`` (etcd's rules); adds surviving revisions <= at_main to
        ``keep``. Returns True when nothing is left (the key can leave the index)."""
        bound = last_of_main(at_main)
        g, revs, ended = self._first_reaching(bound)
        i = bisect.bisect_right(revs, bound) - 1
        if i >= 0:
            keep.add(revs[i])
            del revs[:i]
            if len(revs) == 1 and ended:
                keep.discard(revs[0])  # only the tombstone survived: the generation goes
                g += 1
        if g:
            del self.past[:g]
        if not self.past:
            self.past = None
        return self.past is None and not self.revs


class SingleRevision:
    """A key whose whole history is one live value (the common case at scale: a key written once): its
    revision, create main revision and version, without a KeyHistory's list. Same reading methods as
    KeyHistory; a second write replaces it in the index by ``expanded()``. ``_created`` is None when the value
    created the key (created == main_of(rev)): no int object per key for it."""

    __slots__ = ("rev", "_created", "version")

    def __init__(self, rev: int, created: int, version: int) -> None:
        self.rev = rev
        self._created = None if created == rev >> SUB_BITS else created
        self.version = version
        untrack(self)

    @property
    def created(self) -> int:
        return self.rev >> SUB_BITS if self._created is None else self._created

    def expanded(self) -> KeyHistory:
        return KeyHistory(self.created, self.version, [self.rev])

    def is_live(self) -> bool:
        return True

    def find(self, at_main: int) -> tuple[int, int, int] | None:
        return (self.rev, self.created, self.version) if self.rev <= last_of_main(at_main) else None

    def keep(self, at_main: int, keep: set[int]) -> None:
        if self.rev <= last_of_main(at_main):
            keep.add(self.rev)

    def compact(self, at_main: int, keep: set[int]) -> bool:
        """A live key's only revision always survives: adds it to ``keep`` if <= at_main; never empty."""
        self.keep(at_main, keep)
        return False


class KeyIndex:
    """Invariant: each key maps to a SingleRevision while its history is one live value, else a KeyHistory."""

    def __init__(self) -> None:
        self._tree = SortedMap()

    def _history(self, key: bytes) -> KeyHistory | None:
        """The key's KeyHistory, expanding a SingleRevision in the index first; None for an unknown key."""
        history = self._tree.get(key)
        if type(history) is SingleRevision:
            history = self._tree[key] = history.expanded()
        return history

    def put(self, key: bytes, rev: int) -> tuple[int, int]:
        history = self._history(key)
        if history is None:
            created = main_of(rev)
            self._tree[key] = SingleRevision(rev, created, 1)
            return created, 1
        return history.put(rev)

    def restore(self, key: bytes, rev: int, created: int, version: int) -> None:
        history = self._history(key)
        if history is None:
            self._tree[key] = SingleRevision(rev, created, version)
        else:
            history.restore(rev, created, version)

    def tombstone(self, key: bytes, rev: int) -> None:
        self._history(key).tombstone(rev)

    def restore_tombstone(self, key: bytes, rev: int) -> None:
        history = self._history(key)
        if history is None:
            # Only the tombstone survived a compaction: nothing of the key is visible at any revision.
            return
        history.tombstone(rev)

    def get(self, key: bytes, at_main: int) -> tuple[int, int, int] | None:
        history = self._tree.get(key)
        return None if history is None else history.find(at_main)

    def range(self, key: bytes, end: bytes | None, at_main: int) -> list[tuple[bytes, int]]:
        """(key, revision) of every key in [key, end) visible at ``at_main``, ascending by key.

        ``end`` None means the single key ``key``; b"" means no upper bound."""
        return self.page(key, end, at_main, _NO_LIMIT)[0]

    def page(self, key: bytes, end: bytes | None, at_main: int, limit: int) -> tuple[list[tuple[bytes, int]], int]:
        """The first ``limit`` (> 0) pairs of ``range(key, end, at_main)`` and the number of keys in that range:
        the keys past the limit are only counted (a limited list over a large prefix, as Kubernetes pages it,
        builds no pair for the rest of the prefix)."""
        if end is None:
            found = self.get(key, at_main)
            return ([], 0) if found is None else ([(key, found[0])], 1)
        return self._tree.visible_page(key, end or None, last_of_main(at_main), limit, SingleRevision, at_main)

    def count(self, key: bytes, end: bytes | None, at_main: int) -> int:
        """``len(self.range(key, end, at_main))``, without building the list (a count over every key)."""
        if end is None:
            return 0 if self.get(key, at_main) is None else 1
        return self._tree.visible_page(key, end or None, last_of_main(at_main), 0, SingleRevision, at_main)[1]

    def live_keys(self, key: bytes, end: bytes | None) -> list[bytes]:
        """Keys in [key, end) that exist now (same ``end`` convention as ``range``)."""
        if end is None:
            history = self._tree.get(key)
            return [key] if history is not None and history.is_live() else []
        return [k for k, history in self._tree.irange(key, end or None) if history.is_live()]

    def compact(self, at_main: int) -> set[int]:
        """Compacts every key at ``at_main``; returns the revisions <= at_main that must stay."""
        keep: set[int] = set()
        emptied = [key for key, history in self._tree.items() if history.compact(at_main, keep)]
        for key in emptied:
            del self._tree[key]
        return keep

    def keep(self, at_main: int) -> set[int]:
        """The revisions a compaction at ``at_main`` would keep (etcd's treeIndex.Keep); changes nothing."""
        keep: set[int] = set()
        for _, history in self._tree.items():
            history.keep(at_main, keep)
        return keep

    def __len__(self) -> int:
        return len(self._tree)

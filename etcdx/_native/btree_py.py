"""SortedMap: an ordered map from bytes to any value, as a B+tree (the pure-Python twin of _btree.pyx).

Layout: leaves hold sorted keys with their values and link to the next leaf (for range scans); inner
nodes hold separators, with len(children) == len(keys) + 1 and every key under children[i] below
keys[i] <= every key under children[i + 1]. A node holds at most ``order`` keys; a node other than the
root holds at least ``order // 2`` keys (leaves) or children (inner nodes): deletion borrows from a
sibling or merges with it, so the tree stays O(log n) high and never keeps empty nodes.

Fan-out: DEFAULT_ORDER = 64 keys per node, chosen by timing insert, get, 100-key irange and delete on
2e5 random etcd-like keys at orders 16 to 256: 16 and 32 are 10-50% slower in both implementations,
48-256 are within noise for the compiled tree (cache misses on the key objects dominate), and 64 is the
fastest for this twin.

Mutating the map while an ``irange`` / ``items`` iterator is alive is undefined (the iterator may skip or
repeat keys, or stop early): collect the keys first, then mutate.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Any

DEFAULT_ORDER = 64
_MISSING = object()


class _Leaf:
    __slots__ = ("keys", "values", "next")

    def __init__(self, keys: list[bytes], values: list[Any], next_leaf: _Leaf | None) -> None:
        self.keys = keys
        self.values = values
        self.next = next_leaf


class _Inner:
    __slots__ = ("keys", "children")

    def __init__(self, keys: list[bytes], children: list) -> None:
        self.keys = keys
        self.children = children


class SortedMap:
    def __init__(self, order: int = DEFAULT_ORDER) -> None:
        if order < 4:
            raise ValueError("order must be at least 4")
        self._order = order
        self._root: _Leaf | _Inner = _Leaf([], [], None)
        self._len = 0

    def __len__(self) -> int:
        return self._len

    # -- lookup --------------------------------------------------------------------------------

    def _leaf_for(self, key: bytes) -> _Leaf:
        node = self._root
        while isinstance(node, _Inner):
            node = node.children[bisect_right(node.keys, key)]
        return node

    def get(self, key: bytes, default: Any = None) -> Any:
        key = bytes(key)
        leaf = self._leaf_for(key)
        i = bisect_left(leaf.keys, key)
        if i < len(leaf.keys) and leaf.keys[i] == key:
            return leaf.values[i]
        return default

    def __getitem__(self, key: bytes) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: bytes) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    # -- insertion -----------------------------------------------------------------------------

    def __setitem__(self, key: bytes, value: Any) -> None:
        key = bytes(key)
        path: list[tuple[_Inner, int]] = []
        node = self._root
        while isinstance(node, _Inner):
            i = bisect_right(node.keys, key)
            path.append((node, i))
            node = node.children[i]
        i = bisect_left(node.keys, key)
        if i < len(node.keys) and node.keys[i] == key:
            node.values[i] = value
            return
        node.keys.insert(i, key)
        node.values.insert(i, value)
        self._len += 1
        if len(node.keys) > self._order:
            self._split(node, path)

    def _split(self, node: _Leaf | _Inner, path: list[tuple[_Inner, int]]) -> None:
        """Splits an overfull node in two and pushes the separator up, splitting ancestors as needed."""
        while True:
            mid = len(node.keys) // 2
            if isinstance(node, _Leaf):
                right: _Leaf | _Inner = _Leaf(node.keys[mid:], node.values[mid:], node.next)
                del node.keys[mid:], node.values[mid:]
                node.next = right
                separator = right.keys[0]
            else:
                separator = node.keys[mid]
                right = _Inner(node.keys[mid + 1 :], node.children[mid + 1 :])
                del node.keys[mid:], node.children[mid + 1 :]
            if not path:
                self._root = _Inner([separator], [node, right])
                return
            parent, i = path.pop()
            parent.keys.insert(i, separator)
            parent.children.insert(i + 1, right)
            if len(parent.keys) <= self._order:
                return
            node = parent

    # -- deletion ------------------------------------------------------------------------------

    def pop(self, key: bytes, default: Any = _MISSING) -> Any:
        key = bytes(key)
        path: list[tuple[_Inner, int]] = []
        node = self._root
        while isinstance(node, _Inner):
            i = bisect_right(node.keys, key)
            path.append((node, i))
            node = node.children[i]
        i = bisect_left(node.keys, key)
        if i == len(node.keys) or node.keys[i] != key:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = node.values[i]
        del node.keys[i], node.values[i]
        self._len -= 1
        self._rebalance(node, path)
        return value

    def __delitem__(self, key: bytes) -> None:
        self.pop(key)

    def _rebalance(self, node: _Leaf | _Inner, path: list[tuple[_Inner, int]]) -> None:
        """Restores the minimum fill of ``node`` by borrowing from or merging with a sibling."""
        minimum = self._order // 2
        while path:
            size = len(node.keys) if isinstance(node, _Leaf) else len(node.children)
            if size >= minimum:
                return
            parent, i = path.pop()
            left = parent.children[i - 1] if i > 0 else None
            right = parent.children[i + 1] if i + 1 < len(parent.children) else None
            if isinstance(node, _Leaf):
                # Borrowing evens the two leaves out, so the next deletions do not borrow again at once.
                if left is not None and len(left.keys) > minimum:
                    moved = (len(left.keys) - len(node.keys)) // 2
                    node.keys[0:0] = left.keys[-moved:]
                    node.values[0:0] = left.values[-moved:]
                    del left.keys[-moved:], left.values[-moved:]
                    parent.keys[i - 1] = node.keys[0]
                    return
                if right is not None and len(right.keys) > minimum:
                    moved = (len(right.keys) - len(node.keys)) // 2
                    node.keys += right.keys[:moved]
                    node.values += right.values[:moved]
                    del right.keys[:moved], right.values[:moved]
                    parent.keys[i] = right.keys[0]
                    return
                if left is not None:
                    left.keys += node.keys
                    left.values += node.values
                    left.next = node.next
                    del parent.keys[i - 1], parent.children[i]
                else:
                    node.keys += right.keys
                    node.values += right.values
                    node.next = right.next
                    del parent.keys[i], parent.children[i + 1]
            else:
                if left is not None and len(left.children) > minimum:
                    node.keys.insert(0, parent.keys[i - 1])
                    node.children.insert(0, left.children.pop())
                    parent.keys[i - 1] = left.keys.pop()
                    return
                if right is not None and len(right.children) > minimum:
                    node.keys.append(parent.keys[i])
                    node.children.append(right.children.pop(0))
                    parent.keys[i] = right.keys.pop(0)
                    return
                if left is not None:
                    left.keys.append(parent.keys[i - 1])
                    left.keys += node.keys
                    left.children += node.children
                    del parent.keys[i - 1], parent.children[i]
                else:
                    node.keys.append(parent.keys[i])
                    node.keys += right.keys
                    node.children += right.children
                    del parent.keys[i], parent.children[i + 1]
            node = parent
        if isinstance(node, _Inner) and len(node.children) == 1:
            self._root = node.children[0]

    # -- iteration -----------------------------------------------------------------------------

    def irange(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, Any]]:
        """(key, value) pairs with start <= key < end, ascending; end None = no upper bound."""
        start = bytes(start)
        end = None if end is None else bytes(end)
        leaf: _Leaf | None = self._leaf_for(start)
        i = bisect_left(leaf.keys, start)
        while leaf is not None:
            keys = leaf.keys
            while i < len(keys):
                key = keys[i]
                if end is not None and key >= end:
                    return
                yield key, leaf.values[i]
                i += 1
            leaf, i = leaf.next, 0

    def items(self) -> Iterator[tuple[bytes, Any]]:
        return self.irange(b"")

    def visible_page(
        self, start: bytes, end: bytes | None, bound: int, limit: int, single: type, at_main: int
    ) -> tuple[list[tuple[bytes, int]], int]:
        """The key index's page walk (KeyIndex.page), compiled in _btree.pyx because it visits every key of the
        range (a Kubernetes list counts a whole prefix): the first ``limit`` (key, revision) pairs, ascending, of
        the keys in [start, end) (end None: no upper bound) that have a value visible at ``at_main``, and how
        many such keys there are. ``bound`` is last_of_main(at_main), the largest packed revision of that main.

        Values are the key index's: of type ``single`` (one revision, in ``.rev``), or histories whose current
        generation's revisions are ``.revs`` (ascending, empty while the key is deleted) and whose
        ``.find(at_main)`` gives (revision, ...) or None. A history whose newest revision is visible is answered
        from ``.revs`` alone (that revision is the one ``find`` gives); any other is asked ``find``."""
        pairs: list[tuple[bytes, int]] = []
        count = 0
        for key, value in self.irange(start, end):
            if type(value) is single:
                rev = value.rev
                if rev > bound:
                    continue
            else:
                revs = value.revs
                if revs and revs[-1] <= bound:
                    rev = revs[-1]
                else:
                    found = value.find(at_main)
                    if found is None:
                        continue
                    rev = found[0]
            count += 1
            if count <= limit:
                pairs.append((key, rev))
        return pairs, count

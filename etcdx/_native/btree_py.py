"""Placeholder twin of the key-index SortedMap (sorted list + dict); replaced by the B+tree twin."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

_MISSING = object()


class SortedMap:
    """Ordered map from bytes keys to arbitrary values, iterated in bytewise key order."""

    def __init__(self) -> None:
        self._keys: list[bytes] = []
        self._values: dict[bytes, Any] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: bytes) -> bool:
        return key in self._values

    def __getitem__(self, key: bytes) -> Any:
        return self._values[key]

    def __setitem__(self, key: bytes, value: Any) -> None:
        if key not in self._values:
            bisect.insort(self._keys, key)
        self._values[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self._values[key]
        del self._keys[bisect.bisect_left(self._keys, key)]

    def get(self, key: bytes, default: Any = None) -> Any:
        return self._values.get(key, default)

    def pop(self, key: bytes, default: Any = _MISSING) -> Any:
        if key in self._values:
            value = self._values[key]
            del self[key]
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def irange(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, Any]]:
        """(key, value) pairs with start <= key < end in ascending order; end None = no upper bound."""
        i = bisect.bisect_left(self._keys, start)
        stop = len(self._keys) if end is None else bisect.bisect_left(self._keys, end)
        for key in self._keys[i:stop]:
            yield key, self._values[key]

    def items(self) -> Iterator[tuple[bytes, Any]]:
        return self.irange(b"")

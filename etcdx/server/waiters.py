"""Pending proposals: the client task waits on its log index; apply resolves it with the outcome."""

from __future__ import annotations

from typing import Any

import trio


class _Waiter:
    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: Any = None


class Waiters:
    """Maps log index -> one waiting proposer. A waiter whose caller gave up is simply dropped."""

    def __init__(self) -> None:
        self._by_index: dict[int, _Waiter] = {}

    def register(self, index: int) -> _Waiter:
        waiter = _Waiter()
        self._by_index[index] = waiter
        return waiter

    def forget(self, index: int) -> None:
        self._by_index.pop(index, None)

    def resolve(self, index: int, result: Any) -> None:
        waiter = self._by_index.pop(index, None)
        if waiter is not None:
            waiter.result = result
            waiter.done.set()

    def __len__(self) -> int:
        return len(self._by_index)

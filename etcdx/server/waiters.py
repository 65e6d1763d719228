"""Pending proposals: whoever proposed waits on its request id; the apply of the entry carrying that id
resolves it with the outcome. Keyed by request id, not log index: a new leader may replace an uncommitted
entry at an index with another member's entry, and a proposal that is lost that way is never answered
(its caller's deadline ends it).

Two ways to wait: a task parks in ``wait`` (trio's low-level wait, rescheduled with the outcome directly, no
Event per proposal), or a caller that must not hold a task (the gRPC layer's deferred unary calls) hands a
callback to ``on_resolve``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import outcome
import trio


class Waiters:
    """Maps request id -> the one callback that takes its result. A waiter whose caller gave up is dropped.

    Invariant: an index is in ``_by_index`` exactly while its waiter waits (a task parked in ``wait``, or a
    callback not yet called). Callbacks run inside ``resolve`` (the server's apply) and must not raise.
    """

    def __init__(self) -> None:
        self._by_index: dict[int, Callable[[Any], None]] = {}

    def on_resolve(self, index: int, callback: Callable[[Any], None]) -> None:
        """``resolve(index, result)`` will call ``callback(result)``, once."""
        if index in self._by_index:
            raise RuntimeError(f"waiters: request {index} already has a waiter")
        self._by_index[index] = callback

    async def wait(self, index: int, if_abandoned: Callable[[Any], None] | None = None) -> Any:
        """Parks the calling task until ``resolve(index, result)``; returns ``result``. Cancellable: a
        cancelled caller is forgotten, and its later resolve goes to ``if_abandoned`` (a no-op without one)."""
        task = trio.lowlevel.current_task()
        self.on_resolve(index, lambda result: trio.lowlevel.reschedule(task, outcome.Value(result)))

        def abort(_: Any) -> trio.lowlevel.Abort:
            if if_abandoned is None:
                del self._by_index[index]
            else:
                self._by_index[index] = if_abandoned
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def resolve(self, index: int, result: Any) -> None:
        callback = self._by_index.pop(index, None)
        if callback is not None:
            callback(result)

    def pending_between(self, first: int, last: int) -> list[int]:
        """The ids from ``first`` to ``last`` (both included) that a waiter waits for, in order."""
        by_index = self._by_index
        if last - first < len(by_index):
            return [i for i in range(first, last + 1) if i in by_index]
        return sorted(i for i in by_index if first <= i <= last)

    def __len__(self) -> int:
        return len(self._by_index)

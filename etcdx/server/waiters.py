"""Pending proposals: the client task waits on its log index; apply resolves it with the outcome.

The waiting task is parked with trio's low-level wait and rescheduled with the outcome directly: no Event
per proposal, one reschedule per resolve.
"""

from __future__ import annotations

from typing import Any

import outcome
import trio


class Waiters:
    """Maps log index -> the one task waiting for it. A waiter whose caller gave up is simply dropped.

    Invariant: a task is in ``_by_index`` exactly while it is parked in ``wait`` for that index.
    """

    def __init__(self) -> None:
        self._by_index: dict[int, trio.lowlevel.Task] = {}

    async def wait(self, index: int) -> Any:
        """Parks the calling task until ``resolve(index, result)``; returns ``result``. Cancellable: a
        cancelled caller is forgotten, and its later resolve is a no-op."""
        if index in self._by_index:
            raise RuntimeError(f"waiters: index {index} already has a waiter")
        self._by_index[index] = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            del self._by_index[index]
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def resolve(self, index: int, result: Any) -> None:
        task = self._by_index.pop(index, None)
        if task is not None:
            trio.lowlevel.reschedule(task, outcome.Value(result))

    def __len__(self) -> int:
        return len(self._by_index)

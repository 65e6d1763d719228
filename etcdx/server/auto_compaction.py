"""etcd 3.5's auto compaction schedules (--auto-compaction-mode, --auto-compaction-retention). Pure: the
driver (EtcdServer._auto_compaction_loop) sleeps ``interval`` seconds between steps, feeds the current
revision and a monotonic ``now``, proposes the Compact a step asks for through the log, and reports success.

periodic, retention P seconds: the revision is sampled every min(P, 1 h) / 10; the samples of about the
last P are kept, the oldest first. The first compaction is due P after the start, each later one
min(P, 1 h) after the last success; each compacts to the oldest sample (the revision seen about P ago).
A failed compaction is retried at the next sample.

revision, retention R revisions: every 5 minutes, a compaction to current - R, unless that is not
positive or is the revision the last successful one compacted to.

Only the leader compacts (etcd pauses the compactor on followers); samples are taken regardless.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

HOUR = 3600.0
RETRY_DIVISOR = 10
REVISION_INTERVAL = 300.0  # etcd's revInterval


class Schedule(Protocol):
    interval: float

    def sample(self, revision: int) -> None: ...

    def due(self, now: float, revision: int) -> int | None: ...

    def succeeded(self, now: float, revision: int) -> None: ...


class PeriodicSchedule:
    def __init__(self, retention: float, now: float) -> None:
        """``retention`` in seconds (> 0); ``now`` is when the compactor starts."""
        window = min(retention, HOUR)
        self.interval = window / RETRY_DIVISOR
        self._compact_interval = window
        self._wait = retention  # until the first compaction; the compaction interval after it
        self._samples: deque[int] = deque(maxlen=int(retention / self.interval) + 1)
        self._last_success = now

    def sample(self, revision: int) -> None:
        """Records the revision at the start of an interval (the oldest beyond the window is dropped)."""
        self._samples.append(revision)

    def due(self, now: float, revision: int) -> int | None:
        """The revision to compact to now, or None when no compaction is due."""
        if now - self._last_success < self._wait or not self._samples:
            return None
        self._wait = self._compact_interval
        return self._samples[0]

    def succeeded(self, now: float, revision: int) -> None:
        """The compaction ``due`` asked for is done (or was already: etcd counts ErrCompacted as done)."""
        self._last_success = now


class RevisionSchedule:
    def __init__(self, retention: int, interval: float = REVISION_INTERVAL) -> None:
        """``retention`` revisions (> 0) are kept behind the current one."""
        self.interval = interval
        self._retention = retention
        self._previous = 0

    def sample(self, revision: int) -> None:
        return None

    def due(self, now: float, revision: int) -> int | None:
        target = revision - self._retention
        if target <= 0 or target == self._previous:
            return None
        return target

    def succeeded(self, now: float, revision: int) -> None:
        self._previous = revision


def schedule_for(mode: str, retention: float, now: float, revision_interval: float = REVISION_INTERVAL) -> Schedule:
    """The schedule of ``mode`` ("periodic" or "revision") for a positive ``retention``."""
    if mode == "periodic":
        return PeriodicSchedule(retention, now)
    return RevisionSchedule(int(retention), revision_interval)

"""A token bucket on an injected clock: how often something may happen, with a burst."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` a second by ``clock`` (seconds); ``take`` spends one if there is one.
    The clock is first read by ``take`` (so a bucket can be made outside the event loop whose clock it reads), and
    a clock that went back (another trio run) refills nothing."""

    def __init__(self, burst: int, rate: float, clock: Callable[[], float]) -> None:
        self._burst = burst
        self._rate = rate
        self._clock = clock
        self._tokens = float(burst)
        self._refilled_at: float | None = None

    def take(self) -> bool:
        now = self._clock()
        if self._refilled_at is not None and now > self._refilled_at:
            self._tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self._rate)
        self._refilled_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

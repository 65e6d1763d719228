"""Keeping objects out of the cyclic garbage collector's view: the pure-Python twin of _gctrack.pyx.

Pure Python cannot take an object out of the collector's view, so ``untrack`` returns it unchanged: the
same behaviour, only the collector's work differs (see _gctrack.pyx for why a member untracks).
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def untrack(obj: T) -> T:
    """Returns ``obj``; the compiled module also takes it out of the cyclic collector's view (see there)."""
    return obj

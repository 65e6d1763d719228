"""Key-range permissions as merged intervals: what a user may read and write (etcd's rangePermCache).

An interval is ``(begin, end)`` over byte strings, half-open ``[begin, end)``; ``end is None`` means
"to the end of the keyspace". A single key ``k`` is the interval ``[k, k + b"\\x00")``: the only key
at or above ``k`` and below ``k + b"\\x00"`` is ``k`` itself.

Etcd's wire convention, used both by permissions and by requests (Range, DeleteRange, Watch):
``range_end`` empty names the single key ``key``; ``range_end == b"\\x00"`` names every key at or
above ``key``; anything else names ``[key, range_end)``.

Invariant of MergedRanges: its intervals are sorted, disjoint and not touching (touching or overlapping
grants are merged), so "is this interval covered" is one binary search.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from etcdx.pb.authpb import auth_pb2

Interval = tuple[bytes, bytes | None]

OPEN_END = b"\x00"


def key_interval(key: bytes, range_end: bytes) -> Interval:
    """The interval a (key, range_end) pair names, by etcd's convention (module docstring).

    A non-empty ``range_end`` at or below ``key`` names no key; it is taken as the single key ``key`` so
    that checking it still requires a permission on ``key`` (an empty request never widens access).
    """
    if range_end == OPEN_END:
        return (key, None)
    if not range_end or range_end <= key:
        return (key, key + b"\x00")
    return (key, range_end)


def _permission_interval(perm: auth_pb2.Permission) -> Interval | None:
    """The interval a granted permission covers, or None if it covers no key (range_end at or below key)."""
    if perm.range_end and perm.range_end != OPEN_END and perm.range_end <= perm.key:
        return None
    return key_interval(perm.key, perm.range_end)


class MergedRanges:
    """A set of keys held as sorted, disjoint, non-touching intervals."""

    __slots__ = ("_begins", "_ends")

    def __init__(self, intervals: Iterable[Interval]) -> None:
        merged: list[list] = []
        for begin, end in sorted(intervals, key=lambda iv: iv[0]):
            if merged and (merged[-1][1] is None or begin <= merged[-1][1]):
                last_end = merged[-1][1]
                if last_end is not None and (end is None or end > last_end):
                    merged[-1][1] = end
                continue
            merged.append([begin, end])
        self._begins = [iv[0] for iv in merged]
        self._ends = [iv[1] for iv in merged]

    def intervals(self) -> list[Interval]:
        return list(zip(self._begins, self._ends, strict=True))

    def covers(self, interval: Interval) -> bool:
        """True if every key of ``interval`` is in the set."""
        begin, end = interval
        i = bisect.bisect_right(self._begins, begin) - 1
        if i < 0:
            return False
        have_end = self._ends[i]
        if have_end is None:
            return True
        return end is not None and begin < have_end and end <= have_end


@dataclass(frozen=True, slots=True)
class UserPermissions:
    """What one user may read and write, merged over all the roles the user holds."""

    read: MergedRanges
    write: MergedRanges

    @classmethod
    def from_roles(cls, roles: Iterable[auth_pb2.Role]) -> UserPermissions:
        reads: list[Interval] = []
        writes: list[Interval] = []
        for role in roles:
            for perm in role.keyPermission:
                interval = _permission_interval(perm)
                if interval is None:
                    continue
                if perm.permType in (auth_pb2.Permission.READ, auth_pb2.Permission.READWRITE):
                    reads.append(interval)
                if perm.permType in (auth_pb2.Permission.WRITE, auth_pb2.Permission.READWRITE):
                    writes.append(interval)
        return cls(MergedRanges(reads), MergedRanges(writes))

"""Majority arithmetic over one set of voters (single-step membership changes need no joint quorums)."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def quorum_size(voters: Collection[int]) -> int:
    return len(voters) // 2 + 1


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """The highest index held by a majority of voters: the quorum-th largest match (Raft §5.3)."""
    if not voters:
        raise ValueError("no voters: nothing can be committed")
    acked = sorted((match.get(v, 0) for v in voters), reverse=True)
    return acked[quorum_size(voters) - 1]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer grant, else PENDING (Raft §5.2)."""
    granted = sum(1 for v in voters if votes.get(v) is True)
    missing = sum(1 for v in voters if v not in votes)
    q = quorum_size(voters)
    if granted >= q:
        return VoteResult.WON
    if granted + missing >= q:
        return VoteResult.PENDING
    return VoteResult.LOST

"""The request timeout of proposals (etcd's ReqTimeout: 5 s + 2 x election timeout) and the error a proposal
gets when it runs out, as etcd 3.5's parseProposeCtxErr chooses it. Pure: times are passed in (seconds, one
monotonic clock).

A proposal not applied within the timeout is answered with:
- "etcdserver: request timed out, possibly due to previous leader failure" when it was made in the two
  election timeouts before this member last became leader (its entry most likely died with the old leader);
- "etcdserver: request timed out, possibly due to connection lost" when the leader is another member this
  one has no connection to, or this member leads without connections to a quorum;
- "etcdserver: request timed out" otherwise (no leader known included).
A proposal this member could not even hand to a leader (none was known all along) is answered, as etcd 3.5.1
answers its blocked raft Propose, with the raw "context deadline exceeded" (code Unknown).
"""

from __future__ import annotations

from collections import deque

from etcdx import errors


def request_timeout(election_timeout_ms: int) -> float:
    """etcd's ReqTimeout in seconds."""
    return 5.0 + 2 * election_timeout_ms / 1000


class ProposalDeadlines:
    """The proposals in flight in the order made, each with its deadline (``timeout`` after it was made). As
    the timeout is the same for all, the order of deadlines is the order of proposals: adding and expiring
    cost O(1) each. Entries stay until they expire, answered or not (expiring an answered one is a no-op
    for the caller: Waiters.resolve ignores an id nobody waits for)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._queue: deque[tuple[float, int, float]] = deque()

    def add(self, request_id: int, now: float) -> None:
        self._queue.append((now + self.timeout, request_id, now))

    def expired(self, now: float) -> list[tuple[int, float]]:
        """(request id, time it was made) of every proposal whose deadline is past, oldest first; removed."""
        queue, due = self._queue, []
        while queue and queue[0][0] <= now:
            _, request_id, started = queue.popleft()
            due.append((request_id, started))
        return due

    def __len__(self) -> int:
        return len(self._queue)


def timeout_error(
    started: float,
    leader_elected_at: float | None,
    election_timeout: float,
    leader: int,
    connected: bool,
) -> errors.EtcdError:
    """The error for a proposal made at ``started`` that timed out (see the module docstring).
    ``leader_elected_at``: when this member last became leader (None: never); ``connected``: whether this
    member is connected to its leader (to a quorum, when it leads)."""
    if leader_elected_at is not None and leader_elected_at - 2 * election_timeout < started < leader_elected_at:
        return errors.ERR_TIMEOUT_DUE_TO_LEADER_FAIL()
    if leader and not connected:
        return errors.ERR_TIMEOUT_DUE_TO_CONNECTION_LOST()
    return errors.ERR_TIMEOUT()

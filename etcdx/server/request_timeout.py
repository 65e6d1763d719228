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
    """Deadlines of the proposals made, in constant memory per ``slot`` seconds rather than per proposal:
    request ids grow with every proposal, so the proposals of one slot are the ids from its first to its
    last, and they share the slot's start as the time they were made (up to ``slot`` early). As the timeout is
    the same for all, slots expire in the order they were made. A slot stays until it expires; expiring an
    answered proposal is a no-op for the caller (Waiters.resolve ignores an id nobody waits for)."""

    def __init__(self, timeout: float, slot: float = 0.1) -> None:
        self.timeout = timeout
        self.slot = slot
        self._slots: deque[list] = deque()  # [start, first id, last id]

    def add(self, request_id: int, now: float) -> None:
        """Records a proposal; ``request_id`` is greater than every id added before it."""
        slots = self._slots
        if slots and now - slots[-1][0] < self.slot:
            slots[-1][2] = request_id
        else:
            slots.append([now, request_id, request_id])

    def expired(self, now: float) -> list[tuple[int, int, float]]:
        """(first id, last id, time made) of every slot whose deadline is past, oldest first; removed. Ids
        between the two were made by this member in that slot (not every id in between was used)."""
        slots, due = self._slots, []
        while slots and slots[0][0] + self.timeout <= now:
            start, first, last = slots.popleft()
            due.append((first, last, start))
        return due

    def __len__(self) -> int:
        return len(self._slots)


def timeout_error(
    started: float,
    leader_elected_at: float | None,
    election_timeout: float,
    leader: int,
    connected: bool,
) -> type[errors.EtcdError]:
    """The error (its class: raise or instantiate it once per proposal) for a proposal made at ``started`` that
    timed out (see the module docstring).
    ``leader_elected_at``: when this member last became leader (None: never); ``connected``: whether this
    member is connected to its leader (to a quorum, when it leads)."""
    if leader_elected_at is not None and leader_elected_at - 2 * election_timeout < started < leader_elected_at:
        return errors.ERR_TIMEOUT_DUE_TO_LEADER_FAIL
    if leader and not connected:
        return errors.ERR_TIMEOUT_DUE_TO_CONNECTION_LOST
    return errors.ERR_TIMEOUT

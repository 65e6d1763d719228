"""What a leader knows of each member's log, and how it paces appends to it (etcd's flow control).

States: PROBE sends one append per heartbeat until a reply shows where the follower's log matches;
REPLICATE streams appends optimistically, pausing once `max_inflight` messages (or bytes) are
unacknowledged (one more may go per heartbeat response, to recover from lost appends);
SNAPSHOT waits for a snapshot to be installed and sends nothing else.
"""

from __future__ import annotations

import enum
from collections import deque

from etcdx.raft.errors import InvariantViolation
from etcdx.raft.messages import plain_members


class ProgressState(enum.Enum):
    PROBE = "StateProbe"
    REPLICATE = "StateReplicate"
    SNAPSHOT = "StateSnapshot"


_PROGRESS_STATE = plain_members(ProgressState)


class Inflights:
    """Appends sent and not acknowledged: (last index, bytes), oldest first. Invariant: indexes increase."""

    def __init__(self, max_count: int, max_bytes: int | None) -> None:
        if max_count <= 0:
            raise ValueError("max_inflight must be positive")
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._sent: deque[tuple[int, int]] = deque()
        self.bytes = 0

    def add(self, index: int, size: int) -> None:
        if self._sent and index <= self._sent[-1][0]:
            raise InvariantViolation(f"inflight index {index} not above {self._sent[-1][0]}")
        self._sent.append((index, size))
        self.bytes += size

    def free_le(self, index: int) -> None:
        while self._sent and self._sent[0][0] <= index:
            self.bytes -= self._sent.popleft()[1]

    def full(self) -> bool:
        return len(self._sent) >= self.max_count or (self.max_bytes is not None and self.bytes >= self.max_bytes)

    def reset(self) -> None:
        self._sent.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._sent)


class Progress:
    def __init__(self, next_index: int, max_inflight: int, max_inflight_bytes: int | None, learner: bool) -> None:
        self.match = 0
        """Highest index known replicated on the member. Invariant: match < next."""
        self.next = next_index
        """Next index to send."""
        self.state = _PROGRESS_STATE.PROBE
        self.paused = False
        """No more appends until an acknowledgement or a heartbeat response: in PROBE, set by each append
        sent; in REPLICATE, set when the in-flight window fills. A heartbeat response clears it, so a
        member recovers even if every append that filled the window was lost."""
        self.pending_snapshot = 0
        """SNAPSHOT only: the index of the snapshot sent."""
        self.recent_active = False
        """Heard from within the current election timeout (check-quorum)."""
        self.inflights = Inflights(max_inflight, max_inflight_bytes)
        self.learner = learner

    def __repr__(self) -> str:
        text = f"{self.state.value} match={self.match} next={self.next}"
        if self.inflights:
            text += f" inflight={len(self.inflights)}"
        if self.paused:
            text += " paused"
        if self.state is _PROGRESS_STATE.SNAPSHOT:
            text += f" pending_snapshot={self.pending_snapshot}"
        return text + (" learner" if self.learner else "")

    def _reset_state(self, state: ProgressState) -> None:
        self.paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is _PROGRESS_STATE.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(_PROGRESS_STATE.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(_PROGRESS_STATE.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(_PROGRESS_STATE.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, index: int) -> None:
        self._reset_state(_PROGRESS_STATE.SNAPSHOT)
        self.pending_snapshot = index

    def maybe_update(self, index: int) -> bool:
        """An acknowledgement up to index: raise match (and next). False if it tells nothing new."""
        updated = index > self.match
        if updated:
            self.match = index
            self.paused = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """The member refused an append after index `rejected`; back `next` off. False if the refusal is stale."""
        if self.state is _PROGRESS_STATE.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1, 1)
        self.paused = False
        return True

    def sent_entries(self, last_index: int | None, size: int) -> None:
        """An append went out carrying entries up to last_index (None: no entries)."""
        if self.state is _PROGRESS_STATE.REPLICATE:
            if last_index is not None:
                self.next = last_index + 1
                self.inflights.add(last_index, size)
            self.paused = self.inflights.full()
        elif self.state is _PROGRESS_STATE.PROBE:
            self.paused = True
        else:
            raise InvariantViolation("an append sent to a member waiting for a snapshot")

    def is_paused(self) -> bool:
        return self.paused or self.state is _PROGRESS_STATE.SNAPSHOT

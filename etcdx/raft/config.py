"""The settings of one Raft member, validated up front."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from etcdx.raft.messages import NONE


class Jitter(Protocol):
    """What the core needs of a random generator: random.Random(seed) satisfies it."""

    def randrange(self, stop: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class Config:
    id: int
    election_tick: int = 10
    """Ticks without hearing from a leader before campaigning; the actual timeout is randomised in
    [election_tick, 2 * election_tick) (Raft §5.2)."""
    heartbeat_tick: int = 1
    max_size_per_msg: int | None = 1 << 20
    """Bytes of entries per append message (at least one entry goes regardless); None: unlimited."""
    max_inflight_msgs: int = 256
    max_inflight_bytes: int | None = None
    max_committed_size_per_ready: int | None = None
    pre_vote: bool = True
    check_quorum: bool = True
    applied: int = 0
    """The index the durable state machine had applied when this member started: entries up to it are not
    handed out again, and the commit index starts at least there (the hard state's commit may lag it, since
    a commit-only Ready is written without fsync)."""

    def __post_init__(self) -> None:
        if self.id == NONE:
            raise ValueError("member id 0 is reserved for 'none'")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be positive")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be positive")

"""The simulated network between members: every message is delivered after a random delay (so messages
reorder), or lost, or delivered twice; links can be cut both ways (a partition) or one way only.

One exception to duplication: a forwarded proposal (MsgProp) is never delivered twice. It carries a client's
request, not Raft state, and Raft does not deduplicate proposals: a second copy is a second entry, applied
twice (etcd-io/raft behaves the same). The real transport, a TCP stream, never delivers a message twice.

Deterministic: every choice comes from the generator passed in. The network only decides when and whether a
message arrives; the simulation's event queue carries it there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from etcdx.raft import Message, MessageType


@dataclass
class NetworkFaults:
    """How unreliable the network is: probabilities per message, delays in simulated milliseconds."""

    drop: float = 0.02
    duplicate: float = 0.02
    min_delay: int = 1
    max_delay: int = 12


@dataclass
class Network:
    rng: random.Random
    faults: NetworkFaults
    cut: set[tuple[int, int]] = field(default_factory=set)
    """Directed links that lose every message: (sender, receiver)."""

    def arrivals(self, msg: Message) -> list[int]:
        """The delays after which copies of msg arrive: none (lost), one, or two (duplicated)."""
        if (msg.sender, msg.to) in self.cut or self.rng.random() < self.faults.drop:
            return []
        copies = 2 if self.rng.random() < self.faults.duplicate and msg.type is not MessageType.PROP else 1
        return [self.rng.randint(self.faults.min_delay, self.faults.max_delay) for _ in range(copies)]

    def link_up(self, sender: int, receiver: int) -> bool:
        """Checked again on arrival: a partition made while a message travels loses it."""
        return (sender, receiver) not in self.cut

    def partition(self, members: list[int], *groups: list[int]) -> None:
        """Cut every link between members of different groups, both ways (members in no group are alone)."""
        where = {m: k for k, group in enumerate(groups) for m in group}
        self.cut = {(a, b) for a in members for b in members if a != b and where.get(a, -a) != where.get(b, -b)}

    def cut_one_way(self, sender: int, receiver: int) -> None:
        self.cut.add((sender, receiver))

    def heal(self) -> None:
        self.cut = set()

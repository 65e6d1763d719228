"""Raft's safety properties, asserted after every step of the simulation.

The checks are tests/unit/raft/raft_sim.py's Invariants, reused as they are: the simulation exposes what they
read (``members`` with ``node``, ``storage`` and ``applied``; ``conf``, the bootstrap configuration):

- election safety (Raft §5.2): at most one leader per term;
- log matching (Raft §5.3): two logs agreeing on an entry's index and term agree on everything before it;
- leader completeness (Raft §5.4): a leader holds every entry committed in an earlier term;
- state machine safety (Raft §5.4.3): no two members apply different entries at one index;
- and, with thesis §3.8, a committed entry is on the disk (the durable storage) of a quorum; a committed
  entry never changes; a read index covers every entry committed when the read was issued (thesis §6.4).
"""

from __future__ import annotations

import sys
from pathlib import Path

_RAFT_TESTS = str(Path(__file__).resolve().parents[1] / "unit" / "raft")
if _RAFT_TESTS not in sys.path:
    sys.path.insert(0, _RAFT_TESTS)

from raft_sim import Invariants as RaftSimInvariants  # noqa: E402
from raft_sim import SafetyViolation  # noqa: E402

from etcdx.raft import ConfChange, EntryType  # noqa: E402

__all__ = ["Invariants", "SafetyViolation"]

RESCAN = 3
"""How many already recorded indexes below each member's commit index are compared again at every step."""


class Invariants(RaftSimInvariants):
    """raft_sim's checks, with the two that rescanned a fixed window at every step made incremental (the
    simulation checks after every event, thousands per run): committed entries are recorded from where each
    member's last check stopped (minus RESCAN), applied entries from where each member's last check stopped.
    Same rules, same messages."""

    def __init__(self, cluster) -> None:
        super().__init__(cluster)
        self._commit_seen: dict[tuple[int, int], int] = {}
        self._applied_seen: dict[tuple[int, int], int] = {}

    def record_commits(self, logs: dict[int, tuple[int, list]]) -> None:
        for m in self.cluster.members.values():
            first, entries = logs[m.id]
            commit = m.node.raft.log.committed
            key = (m.id, m.generation)
            start = max(first, self._commit_seen.get(key, 0) - RESCAN)
            for i in range(start, commit + 1):
                term, etype, data = entries[i - first]
                if etype is EntryType.CONF_CHANGE:
                    self.conf_changes.setdefault(i, ConfChange.decode(data))
                seen = self.committed.setdefault(i, (term, data))
                if seen != (term, data):
                    raise SafetyViolation(f"a committed entry changed (§5.4): {i} was {seen}, {m.id} has {term}")
                self.committed_seen_at.setdefault(i, m.node.raft.term)
            self._commit_seen[key] = commit

    def state_machine_safety(self) -> None:
        """Raft §5.4.3: no two members apply different entries at the same index."""
        for m in self.cluster.members.values():
            key = (m.id, m.generation)
            done = self._applied_seen.get(key, 0)
            for index, term, data in m.applied[done:]:
                if self.applied.setdefault(index, (term, data)) != (term, data):
                    raise SafetyViolation(f"state machine safety (§5.4.3): {m.id} applied {term}/{index} {data}")
            self._applied_seen[key] = len(m.applied)

"""etcdx's Raft core: a pure, deterministic consensus engine driven by ticks and messages.

No I/O, clock or global randomness: the shell (etcdx.server, or a simulation) feeds it ticks, peer messages
and proposals, and carries out the Readies it returns (raw_node.Ready states the persistence contract).

  raw_node.py    RawNode and Ready: the shell's interface, numbered Readies, on_persisted, advance_apply
  core.py        Raft: terms, votes, roles (step/tick functions swapped per role), replication, reads
  log.py         the log: storage plus the unstable tail; commit, apply and persisted positions
  storage.py     the Storage protocol and MemoryStorage
  progress.py    per-member replication progress and the in-flight window (flow control)
  tracker.py     the membership with each member's progress, and election votes
  quorum.py      majority arithmetic
  read_only.py   ReadIndex requests waiting for a heartbeat quorum
  confchange.py  single-step membership changes: checks before proposing, the configuration after applying
  messages.py    entries, messages, hard/soft state, snapshots, conf changes
  config.py      a member's settings
"""

from etcdx.raft.config import Config
from etcdx.raft.errors import (
    CompactedError,
    InvariantViolation,
    ProposalDroppedError,
    RaftError,
    SnapshotTemporarilyUnavailableError,
    UnavailableError,
)
from etcdx.raft.messages import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    Snapshot,
    SoftState,
)
from etcdx.raft.raw_node import RawNode, Ready
from etcdx.raft.storage import MemoryStorage, Storage

__all__ = [
    "NONE",
    "CompactedError",
    "Config",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Entry",
    "EntryType",
    "HardState",
    "InvariantViolation",
    "MemoryStorage",
    "Message",
    "MessageType",
    "ProposalDroppedError",
    "RaftError",
    "RawNode",
    "Ready",
    "ReadState",
    "Role",
    "Snapshot",
    "SnapshotTemporarilyUnavailableError",
    "SoftState",
    "Storage",
    "UnavailableError",
]

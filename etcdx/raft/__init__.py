"""etcdx's Raft core: a pure, deterministic consensus engine driven by ticks and messages.

No I/O, clock or global randomness: the shell (etcdx.server, or a simulation) feeds it ticks, peer messages
and proposals, and carries out the Readies it returns (raw_node.Ready states the persistence contract).
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

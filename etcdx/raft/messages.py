"""The values the Raft core exchanges with its peers and its shell: entries, messages, state records.

Plain slotted dataclasses and named tuples, not protobuf: the core is pure and runs thousands of simulated
clusters, and the wire encoding belongs to the transport that will carry these (a later step maps them onto raft.proto).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import NamedTuple

NONE = 0
"""The id no member has: "no leader", "no vote"."""


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class Entry(NamedTuple):
    """One slot of the replicated log. Invariant: within a log, index rises by one and term never decreases.
    (A NamedTuple rather than a frozen dataclass: entries are made per proposal, and a tuple is built
    several times faster.)"""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """The bytes this entry counts against a message's or a Ready's size cap."""
        return len(self.data) + 16


class HardState(NamedTuple):
    """What a member must have on disk before it answers anyone (Raft §5.2, §5.4, figure 2)."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class SoftState(NamedTuple):
    """Volatile state the shell follows: who leads, and this member's role. Never persisted."""

    leader: int = NONE
    role: Role = Role.FOLLOWER


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership in force at a log position: voters, and learners (who replicate but never vote).

    Invariant: voters and learners are disjoint.
    """

    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.voters & self.learners:
            raise ValueError(f"members {sorted(self.voters & self.learners)} are both voter and learner")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state machine up to and including `index` (whose term is `term`), and the membership there."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = ConfState()
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.index == 0


class ConfChangeType(enum.IntEnum):
    ADD_NODE = 0
    """Add a voter, or promote the learner with that id."""
    REMOVE_NODE = 1
    ADD_LEARNER = 2
    UPDATE_NODE = 3
    """Leaves the configuration as it is: carries a change of a member's attributes in its context."""


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single-step membership change; it takes effect when its entry is applied (etcd's ConfChange v1).
    ``context`` is opaque to the core (the shell's description of the member); it takes no part in equality."""

    type: ConfChangeType
    node_id: int
    context: bytes = field(default=b"", compare=False)

    def encode(self) -> bytes:
        """The type, the node id big-endian (nine bytes), then the context: the data of an EntryType.CONF_CHANGE
        entry."""
        return bytes([self.type]) + self.node_id.to_bytes(8, "big") + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        if len(data) < 9:
            raise ValueError(f"a conf change is at least 9 bytes, got {len(data)}")
        return cls(ConfChangeType(data[0]), int.from_bytes(data[1:9], "big"), bytes(data[9:]))


class MessageType(enum.Enum):
    # Local: made by the core or its shell for this member, never sent over the network.
    HUP = "MsgHup"
    BEAT = "MsgBeat"
    CHECK_QUORUM = "MsgCheckQuorum"
    UNREACHABLE = "MsgUnreachable"
    SNAP_STATUS = "MsgSnapStatus"
    # Local or forwarded to the leader; they carry term 0.
    PROP = "MsgProp"
    READ_INDEX = "MsgReadIndex"
    TRANSFER_LEADER = "MsgTransferLeader"
    # Between members.
    APP = "MsgApp"
    APP_RESP = "MsgAppResp"
    VOTE = "MsgVote"
    VOTE_RESP = "MsgVoteResp"
    PRE_VOTE = "MsgPreVote"
    PRE_VOTE_RESP = "MsgPreVoteResp"
    SNAP = "MsgSnap"
    HEARTBEAT = "MsgHeartbeat"
    HEARTBEAT_RESP = "MsgHeartbeatResp"
    TIMEOUT_NOW = "MsgTimeoutNow"
    READ_INDEX_RESP = "MsgReadIndexResp"


LOCAL_MESSAGES = frozenset(
    {MessageType.HUP, MessageType.BEAT, MessageType.CHECK_QUORUM, MessageType.UNREACHABLE, MessageType.SNAP_STATUS}
)

RESPONSES_AFTER_PERSIST = frozenset({MessageType.APP_RESP, MessageType.VOTE_RESP, MessageType.PRE_VOTE_RESP})
"""Responses that assert durable state (a log held, a vote cast): sent only once the Ready that made them,
and every earlier one, is on disk (Raft thesis §3.8; etcd-io/etcd#14370)."""


@dataclass(slots=True)
class Message:
    type: MessageType
    to: int = NONE
    sender: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""

    def __str__(self) -> str:
        return describe_message(self)


@dataclass(frozen=True, slots=True)
class ReadState:
    """The answer to a ReadIndex request: a read issued with `context` may be served once `index` is applied."""

    index: int
    context: bytes


CAMPAIGN_TRANSFER = b"CampaignTransfer"
"""The context of a vote request made for a leader transfer; it overrides a voter's leader lease."""


def describe_entry(e: Entry) -> str:
    kind = "EntryNormal" if e.type is EntryType.NORMAL else "EntryConfChange"
    if e.type is EntryType.CONF_CHANGE:
        cc = ConfChange.decode(e.data)
        return f"{e.term}/{e.index} {kind} {cc.type.name.lower()} {cc.node_id}"
    return f'{e.term}/{e.index} {kind} "{e.data.decode("utf-8", "backslashreplace")}"'


def describe_message(m: Message) -> str:
    """One line, in the spirit of etcd-io/raft's scenario output: `1->2 MsgApp Term:1 Log:1/3 Commit:3 ...`."""
    parts = [f"{m.sender}->{m.to} {m.type.value} Term:{m.term}"]
    if m.type in (MessageType.APP, MessageType.VOTE, MessageType.PRE_VOTE):
        parts.append(f"Log:{m.log_term}/{m.index}")
    elif m.type in (MessageType.APP_RESP, MessageType.READ_INDEX_RESP) or m.index:
        parts.append(f"Index:{m.index}")
    if m.type in (MessageType.APP, MessageType.HEARTBEAT) or m.commit:
        parts.append(f"Commit:{m.commit}")
    if m.reject and m.type is MessageType.APP_RESP:
        parts.append(f"Rejected (Hint: {m.reject_hint}, LogTerm: {m.log_term})")
    elif m.reject:
        parts.append("Rejected")
    if m.entries:
        parts.append("Entries:[" + ", ".join(describe_entry(e) for e in m.entries) + "]")
    if m.snapshot is not None:
        s = m.snapshot
        parts.append(
            f"Snapshot: Index:{s.index} Term:{s.term} Voters:{sorted(s.conf_state.voters)}"
            f" Learners:{sorted(s.conf_state.learners)}"
        )
    if m.context:
        parts.append(f"Context:{m.context.decode('utf-8', 'backslashreplace')}")
    return " ".join(parts)


def plain_members(enum_class: type[enum.Enum]) -> SimpleNamespace:
    """The enum's members as plain attributes (the same member objects). On Python 3.11 every ``Enum.X`` goes
    through EnumType.__getattr__'s slow lookup hook (about 0.25 us, against 0.03 us for a plain attribute);
    the core reads a dozen of these per message, so its hot paths read them from here."""
    return SimpleNamespace(**enum_class.__members__)

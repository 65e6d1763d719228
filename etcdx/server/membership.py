"""The cluster's membership as every member applies it (etcd's RaftCluster): the members, the ids removed
for good, the checks a member makes before it proposes a change, and the apply of a change, in log order.

A change travels as a Raft conf change entry whose context (``Change.encode``) says what it does, which request
proposed it (so the proposer's waiter is resolved with the answer) and the member it is about. Every member
applies the same entries the same way: a change that fails validation at apply (etcd's
ValidateConfigurationChange) answers its proposer with etcd's error and leaves the configuration as it was.
The ids removed are kept in the backend's meta table, so a restarted member still refuses them.

Pure: the caller passes in the backend transaction, the peers it is connected to and the time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import urlsplit

from etcdx import errors
from etcdx.mvcc import rows
from etcdx.mvcc.tables import TableView, TableWriter
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.raft.messages import ConfChange, ConfChangeType
from etcdx.server.ids import member_id

MAX_LEARNERS = 1
"""etcd's maxLearners."""
REMOVED_META = b"etcdx_members_removed"
"""Meta row: the ids of removed members, 8 bytes big-endian each, ascending."""
_HEAD = struct.Struct(">BQ")


class ChangeKind(IntEnum):
    ADD = 1
    REMOVE = 2
    PROMOTE = 3
    UPDATE_PEER_URLS = 4
    PUBLISH_ATTRIBUTES = 5  # a started member's name and client URLs (etcd's member-attributes request)


_CONF_TYPES = {
    ChangeKind.REMOVE: ConfChangeType.REMOVE_NODE,
    ChangeKind.PROMOTE: ConfChangeType.ADD_NODE,
    ChangeKind.UPDATE_PEER_URLS: ConfChangeType.UPDATE_NODE,
    ChangeKind.PUBLISH_ATTRIBUTES: ConfChangeType.UPDATE_NODE,
}


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    request_id: int
    member: rpc_pb2.Member

    def conf_change(self) -> ConfChange:
        if self.kind is ChangeKind.ADD:
            conf_type = ConfChangeType.ADD_LEARNER if self.member.isLearner else ConfChangeType.ADD_NODE
        else:
            conf_type = _CONF_TYPES[self.kind]
        context = _HEAD.pack(self.kind, self.request_id) + self.member.SerializeToString()
        return ConfChange(conf_type, self.member.ID, context)

    @classmethod
    def decode(cls, cc: ConfChange) -> Change | None:
        """The change a conf change entry carries; None for one without context (`etcdx snapshot restore` writes
        the restored members' entries so: the members are stored already)."""
        if len(cc.context) < _HEAD.size:
            return None
        kind, request_id = _HEAD.unpack_from(cc.context)
        member = rpc_pb2.Member.FromString(cc.context[_HEAD.size :])
        member.ID = cc.node_id
        return cls(ChangeKind(kind), request_id, member)


def new_member_id(peer_urls: list[str], unix_seconds: int) -> int:
    """etcd's id for a member added at runtime: the hash of its sorted peer URLs and the time in Unix seconds
    (etcd's NewMember with an empty cluster name and ``now``)."""
    return member_id(peer_urls, str(unix_seconds))


def check_urls(urls: list[str]) -> None:
    """etcd's types.NewURLs: every URL is scheme://host:port with an http, https, unix or unixs scheme and no
    path; ERR_MEMBER_BAD_URLS otherwise."""
    if not urls:
        raise errors.ERR_MEMBER_BAD_URLS
    for url in urls:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise errors.ERR_MEMBER_BAD_URLS from None
        if parts.scheme not in ("http", "https", "unix", "unixs") or not parts.hostname:
            raise errors.ERR_MEMBER_BAD_URLS
        if parts.scheme in ("http", "https") and port is None:
            raise errors.ERR_MEMBER_BAD_URLS
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise errors.ERR_MEMBER_BAD_URLS


class Membership:
    """The members by id and the ids removed. ``started`` (etcd's IsStarted): a member that published its name."""

    def __init__(self, members: list[rpc_pb2.Member], removed: set[int]) -> None:
        self.members: dict[int, rpc_pb2.Member] = {m.ID: m for m in members}
        self.removed = set(removed)

    @staticmethod
    def load_removed(view: TableView) -> set[int]:
        raw = rows.get_meta_bytes(view, REMOVED_META) or b""
        return {int.from_bytes(raw[i : i + 8], "big") for i in range(0, len(raw), 8)}

    def listed(self) -> list[rpc_pb2.Member]:
        """The members as etcd lists them: by id."""
        return [self.members[i] for i in sorted(self.members)]

    def voters(self) -> list[rpc_pb2.Member]:
        return [m for m in self.listed() if not m.isLearner]

    # -- checks before proposing (etcd's mayAddMember, mayRemoveMember, mayPromoteMember) ----------------

    def check_add(self, member: rpc_pb2.Member, me: int, connected: set[int], strict: bool) -> None:
        """``connected``: the peers this member has heard from long enough (etcd's isConnectedFullySince)."""
        if strict:
            if not member.isLearner and not self._ready_to_add_voter():
                raise errors.ERR_MEMBER_NOT_ENOUGH_STARTED
            if not self._fully_connected(me, connected):
                raise errors.ERR_UNHEALTHY
        self.validate(Change(ChangeKind.ADD, 0, member))

    def check_remove(self, removed_id: int, me: int, connected: set[int], strict: bool) -> None:
        self.validate(Change(ChangeKind.REMOVE, 0, rpc_pb2.Member(ID=removed_id)))
        if not strict or self.members[removed_id].isLearner:
            return
        voters = [m for m in self.voters() if removed_id != m.ID]
        if sum(1 for m in voters if m.name) < len(voters) // 2 + 1:
            raise errors.ERR_MEMBER_NOT_ENOUGH_STARTED
        if removed_id != me and removed_id not in connected:
            return  # a member that is down is not part of the active quorum
        all_voters = self.voters()
        active = sum(1 for m in all_voters if me == m.ID or m.ID in connected)
        if active - 1 < 1 + (len(all_voters) - 1) // 2:
            raise errors.ERR_UNHEALTHY

    def check_promote(self, learner_id: int, me: int, connected: set[int], strict: bool) -> None:
        self.validate(Change(ChangeKind.PROMOTE, 0, rpc_pb2.Member(ID=learner_id)))
        if strict:
            if not self._ready_to_add_voter():
                raise errors.ERR_MEMBER_NOT_ENOUGH_STARTED
            if not self._fully_connected(me, connected):
                raise errors.ERR_UNHEALTHY

    def validate_update(self, member: rpc_pb2.Member) -> None:
        self.validate(Change(ChangeKind.UPDATE_PEER_URLS, 0, member))

    def _ready_to_add_voter(self) -> bool:
        voters = self.voters()
        members, started = len(voters) + 1, sum(1 for m in voters if m.name)
        if started == 1 and members == 2:
            return True  # etcd's exception: a second member added to a single one (restoring a cluster)
        return started >= members // 2 + 1

    def _fully_connected(self, me: int, connected: set[int]) -> bool:
        return all(me == m.ID or m.ID in connected for m in self.voters())

    # -- apply ------------------------------------------------------------------------------------------

    def validate(self, change: Change) -> None:
        """etcd's ValidateConfigurationChange: raises the EtcdError that makes ``change`` fail."""
        target = change.member.ID
        if target in self.removed:
            raise errors.ERR_MEMBER_NOT_FOUND
        kind = change.kind
        if kind is ChangeKind.ADD:
            if target in self.members:
                raise errors.ERR_MEMBER_EXIST
            self._check_urls_free(change.member.peerURLs, target)
            if change.member.isLearner and sum(m.isLearner for m in self.members.values()) + 1 > MAX_LEARNERS:
                raise errors.ERR_TOO_MANY_LEARNERS
            return
        current = self.members.get(target)
        if current is None:
            raise errors.ERR_MEMBER_NOT_FOUND
        if kind is ChangeKind.PROMOTE and not current.isLearner:
            raise errors.ERR_MEMBER_NOT_LEARNER
        if kind is ChangeKind.UPDATE_PEER_URLS:
            self._check_urls_free(change.member.peerURLs, target)

    def _check_urls_free(self, urls, owner: int) -> None:
        taken = {u for m in self.members.values() if owner != m.ID for u in m.peerURLs}
        if taken.intersection(urls):
            raise errors.ERR_PEER_URL_EXIST

    def apply(self, change: Change, txn: TableWriter) -> rpc_pb2.Member | None:
        """Applies a change validated by ``validate``; stores it in ``txn``. Returns the member as it is now
        (None once removed)."""
        target, kind = change.member.ID, change.kind
        if kind is ChangeKind.REMOVE:
            self.members.pop(target, None)
            rows.delete_member(txn, target)
            self.removed.add(target)
            packed = b"".join(i.to_bytes(8, "big") for i in sorted(self.removed))
            rows.put_meta_bytes(txn, REMOVED_META, packed)
            return None
        if kind is ChangeKind.ADD:
            member = rpc_pb2.Member(ID=target, peerURLs=change.member.peerURLs, isLearner=change.member.isLearner)
        else:
            member = rpc_pb2.Member()
            member.CopyFrom(self.members[target])
            if kind is ChangeKind.PROMOTE:
                member.isLearner = False
            elif kind is ChangeKind.UPDATE_PEER_URLS:
                member.peerURLs[:] = list(change.member.peerURLs)
            else:
                member.name = change.member.name
                member.clientURLs[:] = list(change.member.clientURLs)
        self.members[target] = member
        rows.put_member(txn, target, member.SerializeToString())
        return member

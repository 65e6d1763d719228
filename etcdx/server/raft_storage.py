"""The Raft core's log store on this member: the WAL on disk, held in memory as a raft MemoryStorage.

Layout (etcd's, with the backend as the snapshot): the backend has applied everything up to its consistent
index, whose term it keeps too; the WAL holds the entries after that (and usually some before, until
they are released) and the last HardState. On start the storage is the backend's point as its snapshot,
then the WAL's entries after it; the shell then writes every Ready to both (the WAL makes it durable, the
memory copy is what the core reads). Contract kept for RawNode: by the time on_persisted(n) is called,
Ready n's entries and hard state are here.

What a lagging follower is sent (MemberStorage.snapshot) is the raft snapshot with the backend image as its
data, at the image's own consistent index: a snapshot recorded without data (the compaction after
--snapshot-count) asks for an image (``on_image_wanted``) and is unavailable until ``attach_image`` brings one,
so the core tries again later, as with etcd's ErrSnapshotTemporarilyUnavailable.

The conversions between the core's types and the WAL's protobuf records are here too (the WAL format is
etcdxpb.Entry / etcdxpb.HardState; the core's types carry the same fields, and WAL.append encodes the
core's entries directly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from etcdx.pb.etcdxpb import raft_pb2
from etcdx.raft import ConfState, Entry, EntryType, HardState, MemoryStorage, Snapshot
from etcdx.raft.errors import SnapshotTemporarilyUnavailableError


class MemberStorage(MemoryStorage):
    """The member's MemoryStorage, whose snapshot carries the backend image the core sends (see above)."""

    def __init__(self, conf_state: ConfState | None = None) -> None:
        super().__init__(conf_state)
        self.on_image_wanted: Callable[[], None] = lambda: None

    def stored_snapshot(self) -> Snapshot:
        """The latest snapshot recorded, with or without its image."""
        return super().snapshot()

    def snapshot(self) -> Snapshot:
        """What the core sends: the latest snapshot with its image (see the module docstring)."""
        snap = super().snapshot()
        if snap.index and not snap.data:
            self.on_image_wanted()
            raise SnapshotTemporarilyUnavailableError()
        return snap

    def attach_image(self, index: int, term: int, conf_state: ConfState, image: bytes) -> bool:
        """Makes ``image`` (the backend at ``index``, written in ``term``, membership ``conf_state``) the data of
        the snapshot at ``index``, recording that snapshot if it is newer than the stored one. False (nothing
        changed) if a newer snapshot is stored already or the log disagrees with ``term``."""
        current = self.stored_snapshot()
        if index < current.index:
            return False
        if index == current.index:
            if term != current.term:
                return False
            self._snapshot = replace(current, conf_state=conf_state, data=image)
            return True
        if index > self.last_index() or self.term(index) != term:
            return False
        self.create_snapshot(index, conf_state, image)
        return True


def from_wal_entry(entry: raft_pb2.Entry) -> Entry:
    return Entry(entry.term, entry.index, EntryType(entry.type), entry.data)


def to_wal_hard_state(hs: HardState) -> raft_pb2.HardState:
    return raft_pb2.HardState(term=hs.term, vote=hs.vote, commit=hs.commit)


def from_wal_hard_state(hs: raft_pb2.HardState | None) -> HardState:
    return HardState() if hs is None else HardState(term=hs.term, vote=hs.vote, commit=hs.commit)


def boot_storage(
    *,
    applied_index: int,
    applied_term: int,
    conf_state: ConfState,
    hard_state: raft_pb2.HardState | None,
    entries: Iterable[raft_pb2.Entry],
) -> MemberStorage:
    """The storage a member starts from: the backend's applied point (index, term) as the snapshot, with the
    membership, then the WAL's entries after it and its last HardState.

    A HardState whose commit is below the applied index is raised to it: a commit-only HardState is written
    without an fsync, so the backend (synced) may be ahead of it, never behind what was committed.
    A new member (nothing on disk) starts in term 1, as etcd's bootstrap does, so its first election makes
    term 2 as etcd's does."""
    storage = MemberStorage(conf_state)
    if applied_index:
        storage.apply_snapshot(Snapshot(index=applied_index, term=applied_term, conf_state=conf_state))
    storage.append([from_wal_entry(e) for e in entries if e.index > applied_index])
    hs = from_wal_hard_state(hard_state)
    if hard_state is None and not applied_index and storage.last_index() == 0:
        hs = HardState(term=1)
    if hs.commit < applied_index:
        hs = HardState(term=hs.term, vote=hs.vote, commit=applied_index)
    storage.set_hard_state(hs)
    return storage

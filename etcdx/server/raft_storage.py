"""The Raft core's log store on this member: the WAL on disk, held in memory as a raft MemoryStorage.

Layout (etcd's, with the backend as the snapshot): the backend has applied everything up to its consistent
index, whose term it keeps too; the WAL holds the entries after that (and usually some before, until
they are released) and the last HardState. On start the storage is the backend's point as its snapshot,
then the WAL's entries after it; the shell then writes every Ready to both (the WAL makes it durable, the
memory copy is what the core reads). Contract kept for RawNode: by the time on_persisted(n) is called,
Ready n's entries and hard state are here.

What a lagging follower is sent (MemberStorage.snapshot) is a raft snapshot with the backend image as its
data, at the image's own consistent index: when no attached image is one the log still continues from (the
snapshots --snapshot-count records hold no data), the storage asks for one (``on_image_wanted``) and is
unavailable until ``attach_image`` brings it, so the core tries again later, as with etcd's
ErrSnapshotTemporarilyUnavailable.

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
    """The member's MemoryStorage, whose snapshot carries the backend image the core sends (see above).

    The last image attached stays what the core sends while the log still continues from its index, also after
    a newer snapshot was recorded without one: under a steady load that compacts the log faster than an image
    is built, a lagging follower still gets one."""

    def __init__(self, conf_state: ConfState | None = None) -> None:
        super().__init__(conf_state)
        self.on_image_wanted: Callable[[], None] = lambda: None
        self.current_conf: Callable[[], ConfState] | None = None  # the membership in force (None: unchecked)
        self._imaged: Snapshot | None = None  # the snapshot of the last image attached

    def stored_snapshot(self) -> Snapshot:
        """The latest snapshot recorded, with or without its image."""
        return super().snapshot()

    def snapshot(self) -> Snapshot:
        """What the core sends: a snapshot with its image that the log continues from (see above), whose
        membership is the one in force (``current_conf``). One taken before a member was added would be
        ignored by that member (it is not in the snapshot's membership) and sent again, for ever: a newer
        image is asked for instead."""
        stored = super().snapshot()
        if not stored.index:
            return stored
        imaged = self._imaged
        for candidate in (stored if stored.data else None, imaged):
            if candidate is not None and candidate.index >= self.first_index() - 1:
                if self.current_conf is None or candidate.conf_state == self.current_conf():
                    return candidate
                break
        self.on_image_wanted()
        raise SnapshotTemporarilyUnavailableError()

    def attach_image(self, index: int, term: int, conf_state: ConfState, image: bytes) -> bool:
        """Makes ``image`` (the backend at ``index``, written in ``term``, membership ``conf_state``) the data the
        core sends, recording a snapshot at ``index`` if it is newer than the stored one. False (nothing
        changed) if the log no longer continues from ``index`` (compacted past it) or disagrees with ``term``."""
        if not self.first_index() - 1 <= index <= self.last_index() or self.term(index) != term:
            return False
        current = self.stored_snapshot()
        if index > current.index:
            self.create_snapshot(index, conf_state, image)
        elif index == current.index:
            self._snapshot = replace(current, conf_state=conf_state, data=image)
        self._imaged = Snapshot(index=index, term=term, conf_state=conf_state, data=image)
        return True

    def apply_snapshot(self, snap: Snapshot) -> None:
        super().apply_snapshot(snap)
        self._imaged = snap if snap.data else None


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

"""The key index of a read worker: rebuilt from the member's key table and then following it (pure).

The writer (the member) appends rows to the key table in revision order, committed with their revision, and a
compaction at C deletes rows below C that it does not keep, oldest first, possibly over several commits; the
meta table says the scheduled and the finished compaction. ``follow(view)`` brings the index to the state
``view`` shows: the rows above the last revision read are added as the member's restart adds them (each row
carries its create revision and version, so a key whose older rows a compaction removed is still right);
a new compaction is applied to the index as the member applies it. If a compaction reached above the last
revision read, rows this index never saw may be gone: the index is rebuilt from the whole table (what is left
of each key is the newest part of its history, which the restart path handles).

Invariant after ``follow(view)``: ``index`` answers every read at a revision in [compact_revision,
current_revision] exactly as the member's index answers it for the state of ``view``.
"""

from __future__ import annotations

from etcdx.mvcc import rows
from etcdx.mvcc import schema as meta
from etcdx.mvcc.key_index import KeyIndex
from etcdx.mvcc.revision import backend_key, main_of, pack, parse_backend_key
from etcdx.mvcc.schema import KEY_DB
from etcdx.mvcc.tables import TableView
from etcdx.pb.mvccpb import kv_pb2


class IndexFollower:
    def __init__(self) -> None:
        self.index = KeyIndex()
        self.seen = 0  # every key row with a main revision up to this one has been read
        self.compacted = -1  # the compaction the index has applied (-1: none)
        self.current_revision = 1
        self.compact_revision = -1
        self.applied_index = 0  # the member's applied (consistent) index in the state last followed
        self.rebuilds = 0  # full rebuilds after the first (a compaction overtook this index)
        self.bytes_read = 0  # bytes of key rows (keys and values) read since this follower was made, rebuilds too

    def follow(self, view: TableView) -> None:
        """Catches the index up to ``view`` (a committed state at or after the last one followed)."""
        compact = max(
            rows.get_meta_int(view, meta.META_FINISHED_COMPACT, -1),
            rows.get_meta_int(view, meta.META_SCHEDULED_COMPACT, -1),
        )
        if compact > self.compacted and compact > self.seen + 1 and self.seen:
            self.index, self.seen, self.compacted = KeyIndex(), 0, -1  # rows below it may be gone unseen
            self.rebuilds += 1
        self._read_rows(view)
        if compact > self.compacted:
            self.index.compact(compact)
            self.compacted = compact
        self.compact_revision = compact
        self.current_revision = max(1, compact, self.seen)
        self.applied_index = rows.get_meta_int(view, meta.META_CONSISTENT_INDEX, 0)

    def _read_rows(self, view: TableView) -> None:
        restore, restore_tombstone = self.index.restore, self.index.restore_tombstone
        decode = kv_pb2.KeyValue.FromString
        newest = read = 0
        for raw_key, value in view.scan(KEY_DB, backend_key(pack(self.seen + 1, 0))):
            rev, tombstone = parse_backend_key(raw_key)
            kv = decode(value)
            if tombstone:
                restore_tombstone(kv.key, rev)
            else:
                restore(kv.key, rev, kv.create_revision, kv.version)
            newest = rev
            read += len(raw_key) + len(value)
        self.bytes_read += read
        if newest:
            self.seen = main_of(newest)

"""A read-only KVStore over one committed snapshot of the member's file, for a read worker's Range.

It is a KVStore whose reading methods (``range_encoded``, ``range`` and what they call) are KVStore's own, so
a worker's answer is the member's byte for byte: the same checks, the same errors, the same encoding. What
differs is where the state comes from: the key index of an IndexFollower caught up to ``view``, the revisions
``view`` holds, and every backend read through ``view`` itself (one LMDB read transaction for the whole
read). It writes nothing; the writing methods are not for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from etcdx.mvcc.kvstore import KVStore
from etcdx.mvcc.tables import TableView
from etcdx.worker.follower import IndexFollower


class _Pinned:
    """The backend as KVStore's reads reach it: every read view is ``view`` (not ended by its ``with``)."""

    def __init__(self, view: TableView, storage_errors: tuple[type[BaseException], ...]) -> None:
        self._view = view
        self.storage_errors = storage_errors

    @contextmanager
    def begin_read(self) -> Iterator[TableView]:
        yield self._view

    def get_many(self, table: bytes, keys: list[bytes]) -> list[bytes]:
        return self._view.get_many(table, keys)


class SnapshotStore(KVStore):
    def __init__(  # noqa: PLW0231 - KVStore's constructor opens a writer's store; this one only reads
        self, follower: IndexFollower, view: TableView, storage_errors: tuple[type[BaseException], ...] = ()
    ) -> None:
        """``follower`` must have followed ``view`` last."""
        self.backend = _Pinned(view, storage_errors)
        self.index = follower.index
        self._wtxn = None
        self._current_rev = follower.current_revision
        self._compact_rev = follower.compact_revision

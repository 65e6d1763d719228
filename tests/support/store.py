"""The store under test, on either backend: a KVStore and its Applier on a real LMDB directory ("lmdb") or on
a MemoryBackend ("memory"), applying each request as the next log index.

``store`` in tests/unit/conftest.py gives one per backend kind. ``reopen`` is a clean restart: the open batch
is committed, then a new store opens on the backend (the LMDB file is closed and opened again).
"""

from __future__ import annotations

from etcdx.lease.lessor import Lessor
from etcdx.mvcc.alarms import Alarms
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.kvstore import KVStore
from etcdx.mvcc.memory_backend import MemoryBackend
from etcdx.mvcc.schema import KEY_DB
from etcdx.mvcc.tables import StorageBackend
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.apply import Applier

BACKENDS = ("lmdb", "memory")
MAP_SIZE = 64 << 20


def open_backend(kind: str, path: str) -> StorageBackend:
    if kind == "lmdb":
        return Backend(path, map_size=MAP_SIZE)
    if kind == "memory":
        return MemoryBackend()
    raise ValueError(kind)


def table_rows(backend: StorageBackend, table: bytes) -> list[tuple[bytes, bytes]]:
    """Every committed (key, value) of ``table``, in key order."""
    with backend.begin_read() as view:
        return list(view.scan(table))


class Store:
    """A KVStore with its Applier on ``kind``'s backend at ``path``. With ``commit_each`` every ``apply`` runs
    in its own batch and commits it; without, the batch transaction stays open until ``kv.commit()``."""

    def __init__(self, kind: str, path: str, commit_each: bool = True) -> None:
        self.kind = kind
        self.path = path
        self.commit_each = commit_each
        self.backend = open_backend(kind, path)
        self._open_store()

    def _open_store(self) -> None:
        self.lessor = Lessor(min_ttl=1, clock=lambda: 0.0)
        self.alarms = Alarms()
        self.kv = KVStore(self.backend, self.lessor)
        self.applier = Applier(self.kv, self.lessor, self.alarms)

    def apply_data(self, data: bytes):
        """Applies ``data`` as the next log entry; returns its answer."""
        with self.kv.apply_batch():
            result = self.applier.apply(self.kv.consistent_index + 1, data)
        if self.commit_each:
            self.kv.commit()
        return result

    def apply(self, **request):
        """Applies InternalRequest(**request) as the next log entry; returns its answer."""
        with self.kv.apply_batch():
            result = self.applier.apply_request(self.kv.consistent_index + 1, InternalRequest(**request))
        if self.commit_each:
            self.kv.commit()
        return result

    def put(self, key: bytes, value: bytes = b"", **options):
        return self.apply(put=pb.PutRequest(key=key, value=value, **options))

    def delete(self, key: bytes, range_end: bytes = b"", **options):
        return self.apply(delete_range=pb.DeleteRangeRequest(key=key, range_end=range_end, **options))

    def compact(self, revision: int):
        return self.apply(compaction=pb.CompactionRequest(revision=revision))

    def range(self, key: bytes, range_end: bytes = b"", **options) -> pb.RangeResponse:
        return self.kv.range(pb.RangeRequest(key=key, range_end=range_end, **options))

    def keys(self, key: bytes = b"\0", range_end: bytes = b"\0", **options) -> list[bytes]:
        return [kv.key for kv in self.range(key, range_end, **options).kvs]

    def stored_revisions(self) -> list[bytes]:
        """The keys of the committed key table (revision keys, in revision order)."""
        return [key for key, _ in table_rows(self.backend, KEY_DB)]

    def state(self) -> tuple:
        """(revision, consistent index, every live (key, value, mod revision), active alarms)."""
        everything = self.kv.range(pb.RangeRequest(key=b"\0", range_end=b"\0"))
        kvs = [(kv.key, kv.value, kv.mod_revision) for kv in everything.kvs]
        return self.kv.current_revision, self.kv.consistent_index, kvs, self.alarms.list()

    def reopen(self) -> None:
        """A clean restart: commits the open batch, closes the backend and opens a new store on it."""
        self.kv.commit()
        self.backend.close()
        self.backend = open_backend(self.kind, self.path) if self.kind == "lmdb" else self.backend
        self._open_store()

    def restore(self, image: bytes) -> None:
        """Replaces the backend's tables with ``image`` (a backend snapshot) and opens a new store on them."""
        self.kv.abort()
        self.backend.restore(image)
        self._open_store()

    def close(self) -> None:
        self.kv.abort()
        self.backend.close()

"""The LMDB backend: the only part of mvcc that touches the disk.

Sub-databases, as etcd's bbolt buckets: ``key`` (revision key -> serialized mvccpb.KeyValue),
``meta`` (consistent_index, scheduledCompactRev, finishedCompactRev), ``lease`` (id -> TTL) and
``alarm`` (member id + alarm type of each active alarm).

Crash contract (power cut included): the file on disk always holds the state as of some committed write
transaction, and that transaction is at most one behind the last commit that returned. The WAL is the
durability source: consistent_index commits atomically with the changes of its entry, so the server replays
the WAL from there and a replay is idempotent; every entry was fsynced to the WAL before it was applied here,
so the backend is never ahead of the WAL.

How: LMDB opened with ``sync=True, metasync=False`` (MDB_NOMETASYNC). Each commit writes its data pages and
fdatasyncs them before it writes the new meta page, and that meta page reaches the disk with the next commit's
fdatasync (or ``sync``). A meta page on disk therefore never points at pages that are not, and LMDB reuses only
pages freed before the previous transaction, which both meta pages no longer reach. Without that fdatasync
(MDB_NOSYNC), the kernel may write the meta page before the pages it points at, or overwrite pages of the last
durable tree with a newer transaction's, so an OS crash can leave a file that does not open or that silently
misses keys while its consistent_index claims them. ``sync`` (the server calls it off its event loop shortly
after applies) also makes the last commit durable, which only shortens the next replay.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator

import lmdb

from etcdx.mvcc import schema

_U64 = struct.Struct(">Q")
_LEASE_ID = struct.Struct(">q")  # lease IDs are int64: clients may choose negative ones
_ALARM = struct.Struct(">QI")  # member id, alarm type
DATA_FILE = "data.mdb"
DEFRAG_FILE = "data.mdb.defrag"  # the compact copy, until it replaces DATA_FILE


class Backend:
    # What a failing disk or environment raises: apply lets these stop the member (a request never causes them).
    storage_errors: tuple[type[BaseException], ...] = (lmdb.Error, OSError, MemoryError)

    def __init__(self, path: str, map_size: int = 8 * 1024**3) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.env = lmdb.open(
            path, map_size=map_size, max_dbs=8, max_readers=1024, sync=True, metasync=False, readahead=False, lock=True
        )
        _fsync_dir(path)  # data.mdb's directory entry, if LMDB just created it
        self.key_db = self.env.open_db(schema.KEY_DB)
        self.meta_db = self.env.open_db(schema.META_DB)
        self.lease_db = self.env.open_db(schema.LEASE_DB)
        self.alarm_db = self.env.open_db(schema.ALARM_DB)

    def sync(self) -> None:
        """Forces committed transactions to disk (blocking: callers run it off the event loop)."""
        self.env.sync(True)

    def close(self) -> None:
        self.sync()
        self.env.close()

    def begin_write(self) -> lmdb.Transaction:
        return self.env.begin(write=True)

    def begin_read(self) -> lmdb.Transaction:
        return self.env.begin(buffers=False)

    def get_meta_int(self, txn: lmdb.Transaction, name: bytes, default: int) -> int:
        raw = txn.get(name, db=self.meta_db)
        return default if raw is None else _U64.unpack(raw)[0] - (1 << 63)

    def put_meta_int(self, txn: lmdb.Transaction, name: bytes, value: int) -> None:
        txn.put(name, _U64.pack(value + (1 << 63)), db=self.meta_db)

    def get_meta_bytes(self, txn: lmdb.Transaction, name: bytes) -> bytes | None:
        return txn.get(name, db=self.meta_db)

    def put_meta_bytes(self, txn: lmdb.Transaction, name: bytes, value: bytes) -> None:
        txn.put(name, value, db=self.meta_db)

    def scan_revisions(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (revision key, value) of the key bucket in revision order (for rebuilding the index)."""
        with self.env.begin(buffers=False) as txn:
            yield from txn.cursor(db=self.key_db).iternext()

    def put_lease(self, txn: lmdb.Transaction, lease_id: int, ttl: int) -> None:
        txn.put(_LEASE_ID.pack(lease_id), _U64.pack(ttl), db=self.lease_db)

    def delete_lease(self, txn: lmdb.Transaction, lease_id: int) -> None:
        txn.delete(_LEASE_ID.pack(lease_id), db=self.lease_db)

    def scan_leases(self) -> list[tuple[int, int]]:
        """Every persisted (lease id, granted TTL)."""
        with self.env.begin(buffers=False) as txn:
            return [(_LEASE_ID.unpack(k)[0], _U64.unpack(v)[0]) for k, v in txn.cursor(db=self.lease_db)]

    def put_alarm(self, txn: lmdb.Transaction, member_id: int, alarm: int) -> None:
        txn.put(_ALARM.pack(member_id, alarm), b"", db=self.alarm_db)

    def delete_alarm(self, txn: lmdb.Transaction, member_id: int, alarm: int) -> None:
        txn.delete(_ALARM.pack(member_id, alarm), db=self.alarm_db)

    def scan_alarms(self) -> list[tuple[int, int]]:
        """Every persisted active alarm as (member id, alarm type)."""
        with self.env.begin(buffers=False) as txn:
            return [_ALARM.unpack(k) for k, _ in txn.cursor(db=self.alarm_db)]

    @property
    def size_bytes(self) -> int:
        return os.path.getsize(os.path.join(self.path, "data.mdb"))

    @property
    def size_in_use_bytes(self) -> int:
        """The bytes of the pages that hold data (the two meta pages and every B-tree's branch, leaf and
        overflow pages): the file's size less its free pages, which a defragmentation gives back."""
        pages = 2
        with self.env.begin() as txn:
            sub_dbs = (self.key_db, self.meta_db, self.lease_db, self.alarm_db)
            for stat in (self.env.stat(), *(txn.stat(db) for db in sub_dbs)):
                pages += stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
        return pages * self.env.stat()["psize"]

    # -- defragmentation (etcd's Defragment): a compacting copy, then swapped in for the live file ----------

    def write_compact_copy(self) -> str:
        """Writes a compacting copy of the environment beside the live file and fsyncs it; returns its path.

        The copy holds the live pages only, renumbered, with no free pages: its size is the space in use.
        Blocking (run it off the event loop). Readers may run alongside; the copy is the state of its own
        read transaction, so the caller keeps writes out from before this call until ``swap_in``. A copy
        left by an interrupted defragmentation is overwritten; a failed copy is removed.
        """
        copy_path = os.path.join(self.path, DEFRAG_FILE)
        try:
            with open(copy_path, "wb") as copy:
                self.env.copyfd(copy.fileno(), compact=True)
                os.fsync(copy.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(copy_path)
            raise
        return copy_path

    @staticmethod
    def discard_interrupted_defragmentation(path: str) -> None:
        """Removes the copy a defragmentation interrupted by a crash left in the backend directory ``path``
        (as large as the data: worth its space on a full disk). Call before the backend is opened."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(path, DEFRAG_FILE))

    def swap_in(self, copy_path: str) -> None:
        """Replaces the live file with ``copy_path`` (from ``write_compact_copy``) and reopens the
        environment exactly as the constructor opened it.

        Every transaction and cursor of the old environment must be closed before the call (py-lmdb
        invalidates them); the sub-database handles are replaced, so callers reach them through this
        object, never a cached handle. The rename is atomic and fsynced: a crash leaves either file
        whole as data.mdb, and both hold the same committed state. If the rename fails, the old file is
        reopened and the error raised.
        """
        map_size = self.env.info()["map_size"]
        self.env.close()
        try:
            os.replace(copy_path, os.path.join(self.path, DATA_FILE))
            _fsync_dir(self.path)
        finally:  # on the compact file, or on the old one if the rename failed
            Backend.__init__(self, self.path, map_size)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

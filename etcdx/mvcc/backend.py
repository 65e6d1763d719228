"""The LMDB backend: the only module of etcdx that uses LMDB, and the only part of mvcc that touches the disk.

The tables of schema.TABLES are sub-databases, as etcd's bbolt buckets; rows.py has their encodings.

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

Other processes (read workers) open the same file read-only (``ReadOnlyBackend``). LMDB keeps the state its
processes share (the last transaction id, which picks the meta page a reader reads, and the reader table) in
lock.mdb, which must never be shared by two different data files. So a swap (``swap_in``: a defragmentation or a
snapshot install renames a new file over data.mdb) unlinks lock.mdb along with the old file and opens the new
one with a fresh lock.mdb: readers still open on the old file keep the old lock.mdb (unlinked) and read the old
file, which nobody writes any more, until they reopen. The swap and every read-only open hold ``open.gate``
(flock: the swap exclusively, an open shared), so no process opens the new file against the old lock.mdb.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import mmap
import os
from collections.abc import Callable, Iterator

import lmdb

from etcdx.mvcc import backend_image
from etcdx.mvcc.schema import TABLES

DATA_FILE = "data.mdb"
DEFRAG_FILE = "data.mdb.defrag"  # the compact copy, until it replaces DATA_FILE
LOCK_FILE = "lock.mdb"  # LMDB's, beside DATA_FILE
GATE_FILE = "open.gate"  # a swap holds it exclusively, a read-only open shared (module docstring)


class LmdbView:
    """A TableView (tables.py) over an LMDB transaction: read-only, or the write transaction it reads through.
    ``dbs`` maps table names to the environment's sub-database handles."""

    __slots__ = ("_txn", "_dbs")

    def __init__(self, txn: lmdb.Transaction, dbs: dict[bytes, object]) -> None:
        self._txn = txn
        self._dbs = dbs

    def __enter__(self) -> LmdbView:
        return self

    def __exit__(self, *exc_info) -> None:
        self._txn.abort()

    def end(self) -> None:
        self._txn.abort()

    def txn_id(self) -> int:
        """The id of the committed write transaction this view reads (a newer commit has a larger one)."""
        return self._txn.id()

    def get(self, table: bytes, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._dbs[table])

    def get_many(self, table: bytes, keys: list[bytes]) -> list[bytes]:
        return [value for _, value in self._txn.cursor(db=self._dbs[table]).getmulti(keys)]

    def scan(self, table: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        cursor = self._txn.cursor(db=self._dbs[table])
        if cursor.set_range(start):
            yield from cursor.iternext()

    def keys(self, table: bytes, start: bytes = b"", stop: bytes | None = None) -> Iterator[bytes]:
        cursor = self._txn.cursor(db=self._dbs[table])
        if not cursor.set_range(start):
            return
        for key in cursor.iternext(values=False):
            if stop is not None and key >= stop:
                return
            yield key


class LmdbWrite(LmdbView):
    """A TableWriter (tables.py): an LMDB write transaction. It ends on the thread that began it. ``committed`` is
    called after its commit."""

    __slots__ = ("_committed",)

    def __init__(self, txn: lmdb.Transaction, dbs: dict[bytes, object], committed: Callable[[], None]) -> None:
        super().__init__(txn, dbs)
        self._committed = committed

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def put(self, table: bytes, key: bytes, value: bytes) -> None:
        self._txn.put(key, value, db=self._dbs[table])

    def delete(self, table: bytes, key: bytes) -> bool:
        return self._txn.delete(key, db=self._dbs[table])

    def commit(self) -> None:
        self._txn.commit()
        self._committed()

    def abort(self) -> None:
        self._txn.abort()


class Backend:
    """A member's LMDB file, as a StorageBackend (tables.py): one sub-database per table."""

    storage_errors: tuple[type[BaseException], ...] = (lmdb.Error, OSError, MemoryError)

    def __init__(self, path: str, map_size: int = 8 * 1024**3, *, fsync: bool = True) -> None:
        """``fsync=False`` (--unsafe-no-fsync): commits and ``sync`` leave the pages to the kernel's writeback."""
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.fsync = fsync
        self.env = lmdb.open(
            path, map_size=map_size, max_dbs=8, max_readers=1024, sync=fsync, metasync=False, readahead=False, lock=True
        )
        _fsync_dir(path)  # data.mdb's directory entry, if LMDB just created it
        self._dbs = {name: self.env.open_db(name) for name in TABLES}
        # A read transaction that ``get_many`` reuses from one call to the next, saving the begin and end of one per
        # read. Invariant: None or on the last committed state: dropped when a write begins and when one commits,
        # and before the environment closes. (So it pins no pages a writer could reuse.)
        self._reader: lmdb.Transaction | None = None

    def sync(self) -> None:
        """Forces committed transactions to disk (blocking: callers run it off the event loop); nothing when
        opened without fsync."""
        if self.fsync:
            self.env.sync(True)

    def close(self) -> None:
        self.sync()
        self._drop_reader()
        self.env.close()

    def release_mapped_pages(self) -> int:
        """Unmaps from this process the file's pages it touched (release_mapped_pages below); the bytes."""
        data_file = os.path.join(self.path, DATA_FILE)
        return release_mapped_pages(data_file, os.stat(data_file))

    def begin_write(self) -> LmdbWrite:
        self._drop_reader()
        return LmdbWrite(self.env.begin(write=True), self._dbs, self._drop_reader)

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.abort()
            self._reader = None

    def begin_read(self) -> LmdbView:
        return LmdbView(self.env.begin(buffers=False), self._dbs)

    def get_many(self, table: bytes, keys: list[bytes]) -> list[bytes]:
        reader = self._reader
        if reader is None:
            reader = self._reader = self.env.begin(buffers=False)
        if len(keys) == 1:  # one key, as most reads: a get, without a cursor
            value = reader.get(keys[0], db=self._dbs[table])
            return [] if value is None else [value]
        return [value for _, value in reader.cursor(db=self._dbs[table]).getmulti(keys)]

    def snapshot(self) -> bytes:
        """The image (backend_image) of the committed tables, read in one read transaction."""
        with self.begin_read() as view:
            return backend_image.encode(view.scan)

    def restore(self, image: bytes) -> None:
        """Replaces every table with the rows of ``image`` in one commit (ValueError, before any change,
        for a bad image). No write transaction may be open."""
        tables = backend_image.decode(image)
        self._drop_reader()
        with self.env.begin(write=True) as txn:
            for name, rows in tables.items():
                db = self._dbs[name]
                txn.drop(db, delete=False)
                cursor = txn.cursor(db=db)
                cursor.putmulti(rows, append=True)

    @property
    def size_bytes(self) -> int:
        return os.path.getsize(os.path.join(self.path, "data.mdb"))

    @property
    def size_in_use_bytes(self) -> int:
        """The bytes of the pages that hold data (the two meta pages and every B-tree's branch, leaf and
        overflow pages): the file's size less its free pages, which a defragmentation gives back."""
        pages = 2
        with self.env.begin() as txn:
            for stat in (self.env.stat(), *(txn.stat(db) for db in self._dbs.values())):
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
        self._drop_reader()
        self.env.close()
        with _gate(self.path, fcntl.LOCK_EX):
            try:
                os.replace(copy_path, os.path.join(self.path, DATA_FILE))
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.path, LOCK_FILE))  # the old file's: see the module docstring
                _fsync_dir(self.path)
            finally:  # on the compact file, or on the old one (and its lock.mdb) if the rename failed
                Backend.__init__(self, self.path, map_size, fsync=self.fsync)


class ReadOnlyBackend:
    """Another process's read-only view of a member's LMDB file (a read worker's, etcdx/worker/): read views
    only. Open it after exec, never inherit it across fork (LMDB's rule). The member's map size is fixed for the
    life of its environment; a larger one (a member restarted with a larger quota) is adopted when a read
    begins (MDB_MAP_RESIZED). A defragmentation or a snapshot install renames a new file over data.mdb:
    ``replaced()`` tells, and the caller reopens."""

    def __init__(self, path: str, map_size: int) -> None:
        self.path = path
        with _gate(path, fcntl.LOCK_SH):  # not while a swap pairs a new data.mdb with a new lock.mdb
            self.env = lmdb.open(
                path, map_size=map_size, max_dbs=8, max_readers=1024, readonly=True, lock=True, readahead=False
            )
            self._file = os.stat(os.path.join(path, DATA_FILE))
        self._dbs = {name: self.env.open_db(name, create=False) for name in TABLES}

    def begin_read(self) -> LmdbView:
        try:
            txn = self.env.begin(buffers=False)
        except lmdb.MapResizedError:
            self.env.set_mapsize(0)  # adopt the size the writer set
            txn = self.env.begin(buffers=False)
        return LmdbView(txn, self._dbs)

    def release_mapped_pages(self) -> int:
        """Unmaps from this process the file's pages it touched (release_mapped_pages below); the bytes."""
        return release_mapped_pages(os.path.join(self.path, DATA_FILE), self._file)

    def replaced(self) -> bool:
        """Whether data.mdb is no longer the file this environment has open."""
        try:
            return os.stat(os.path.join(self.path, DATA_FILE)).st_ino != self._file.st_ino
        except FileNotFoundError:
            return True

    def close(self) -> None:
        self.env.close()


def release_mapped_pages(path: str, file: os.stat_result) -> int:
    """Drops this process's page-table entries for its shared maps of the file at ``path`` whose stat is ``file``,
    with madvise(MADV_DONTNEED); returns the bytes of the maps advised (their whole length, not what was resident).

    For a full scan, such as building a key index from the whole file at start: every page the scan read stays
    mapped, counted in the process's RSS and protected from reclaim as a mapped page, though the scan will not
    read most of them again. The data is not touched: the maps are shared file maps, so the pages stay in the
    page cache (dirty ones are written back as usual) and the next access maps them again from there.

    A map is LMDB's when it is shared (a private map's copied pages would be lost), of the file's inode, and of
    its device or its path (/proc/self/maps names the superblock's device, which is not stat's on btrfs
    subvolumes and on some overlayfs kernels; the path tells there). Contract: this process opens, closes and
    resizes its LMDB environments only from the calling thread (every etcdx process does so on its event loop),
    so a map listed is still LMDB's when it is advised; read transactions may be open. Best effort: 0 when
    /proc/self/maps cannot be read (not Linux)."""
    device = f"{os.major(file.st_dev):02x}:{os.minor(file.st_dev):02x}"
    real = os.path.realpath(path)
    advised = 0
    try:
        with open("/proc/self/maps") as maps:
            lines = maps.readlines()
    except OSError:
        return 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[1][3:4] != "s" or int(fields[4]) != file.st_ino:
            continue
        if fields[3] != device and fields[5].rstrip("\n") != real:
            continue
        start, end = (int(bound, 16) for bound in fields[0].split("-"))
        if _madvise(start, end - start, mmap.MADV_DONTNEED) == 0:
            advised += end - start
    return advised


_libc = ctypes.CDLL(None, use_errno=True)
_madvise = _libc.madvise
_madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_madvise.restype = ctypes.c_int


@contextlib.contextmanager
def _gate(path: str, how: int) -> Iterator[None]:
    """Holds the backend directory's GATE_FILE with flock ``how`` (blocking: a swap takes milliseconds)."""
    fd = os.open(os.path.join(path, GATE_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

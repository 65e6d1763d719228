"""A StorageBackend (tables.py) in memory, for tests and the seeded simulation: same contracts as the LMDB
file, no disk. Pure.

State: the committed tables, each a dict plus its keys in a sorted list (bisect for ordered scans). A read
view holds the committed tables of its start. A write transaction shares them until its first change to a
table, which copies that table (O(table size) once per table and transaction: fine for the sizes tests and
simulations use); ``commit`` installs the transaction's tables as the committed ones, so views opened before
keep their state. "Durable" means committed: ``close`` keeps the committed state, so a new store on the same
object is a restart that lost exactly the uncommitted batch.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

from etcdx.mvcc import backend_image
from etcdx.mvcc.schema import TABLES
from etcdx.mvcc.tables import MAX_KEY


class _Table:
    __slots__ = ("rows", "order")

    def __init__(self, rows: dict[bytes, bytes], order: list[bytes]) -> None:
        self.rows = rows
        self.order = order  # sorted(rows)

    def copy(self) -> _Table:
        return _Table(dict(self.rows), list(self.order))

    def scan(self, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        rows, order = self.rows, self.order
        for i in range(bisect_left(order, start), len(order)):
            key = order[i]
            yield key, rows[key]

    def keys(self, start: bytes, stop: bytes | None) -> Iterator[bytes]:
        order = self.order
        end = len(order) if stop is None else bisect_left(order, stop)
        for i in range(bisect_left(order, start), end):
            yield order[i]

    def row_bytes(self) -> int:
        return sum(len(k) + len(v) for k, v in self.rows.items())


class MemoryView:
    """A TableView of the tables it was given (never changed while it is in use)."""

    def __init__(self, tables: dict[bytes, _Table]) -> None:
        self._tables = tables

    def __enter__(self) -> MemoryView:
        return self

    def __exit__(self, *exc_info) -> None:
        self.end()

    def end(self) -> None:
        self._tables = {}

    def get(self, table: bytes, key: bytes) -> bytes | None:
        return self._tables[table].rows.get(key)

    def get_many(self, table: bytes, keys: list[bytes]) -> list[bytes]:
        rows = self._tables[table].rows
        return [rows[key] for key in keys if key in rows]

    def scan(self, table: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return self._tables[table].scan(start)

    def keys(self, table: bytes, start: bytes = b"", stop: bytes | None = None) -> Iterator[bytes]:
        return self._tables[table].keys(start, stop)


class MemoryWrite(MemoryView):
    """A TableWriter: private copies of the tables it changed, installed by ``commit``."""

    def __init__(self, backend: MemoryBackend) -> None:
        super().__init__(dict(backend.tables))
        self._backend = backend
        self._copied: set[bytes] = set()

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def _own(self, table: bytes) -> _Table:
        if table not in self._copied:
            self._tables[table] = self._tables[table].copy()
            self._copied.add(table)
        return self._tables[table]

    def put(self, table: bytes, key: bytes, value: bytes) -> None:
        if not 0 < len(key) <= MAX_KEY:
            raise ValueError(f"memory backend: a key must be 1 to {MAX_KEY} bytes, got {len(key)}")
        t = self._own(table)
        if key not in t.rows:
            insort(t.order, key)
        t.rows[key] = value

    def delete(self, table: bytes, key: bytes) -> bool:
        if key not in self._tables[table].rows:
            return False
        t = self._own(table)
        del t.rows[key]
        del t.order[bisect_left(t.order, key)]
        return True

    def commit(self) -> None:
        self._backend._end_write(self, self._tables)
        self.end()

    def abort(self) -> None:
        """Drops the changes; a no-op once the transaction has ended."""
        if self._backend._writer is self:
            self._backend._end_write(self, None)
        self.end()


class MemoryBackend:
    """The committed tables and at most one open write transaction."""

    storage_errors: tuple[type[BaseException], ...] = (MemoryError,)

    def __init__(self) -> None:
        self.tables = {name: _Table({}, []) for name in TABLES}
        self._writer: MemoryWrite | None = None

    @classmethod
    def from_snapshot(cls, image: bytes) -> MemoryBackend:
        backend = cls()
        backend.restore(image)
        return backend

    def begin_read(self) -> MemoryView:
        return MemoryView(self.tables)

    def begin_write(self) -> MemoryWrite:
        if self._writer is not None:
            raise RuntimeError("memory backend: a write transaction is already open")
        self._writer = MemoryWrite(self)
        return self._writer

    def get_many(self, table: bytes, keys: list[bytes]) -> list[bytes]:
        return MemoryView(self.tables).get_many(table, keys)

    def _end_write(self, writer: MemoryWrite, tables: dict[bytes, _Table] | None) -> None:
        if self._writer is not writer:
            raise RuntimeError("memory backend: this write transaction has ended")
        self._writer = None
        if tables is not None:
            self.tables = tables

    def snapshot(self) -> bytes:
        """The image (backend_image) of the committed tables."""
        return backend_image.encode(self.begin_read().scan)

    def restore(self, image: bytes) -> None:
        """Replaces every table with the rows of ``image`` (ValueError, before any change, for a bad image).
        No write transaction may be open."""
        if self._writer is not None:
            raise RuntimeError("memory backend: restore with a write transaction open")
        decoded = backend_image.decode(image)
        self.tables = {name: _Table(dict(rows), [key for key, _ in rows]) for name, rows in decoded.items()}

    def sync(self) -> None:
        """Nothing to do: committed is durable here."""

    def close(self) -> None:
        """Drops an open write transaction (as a crash would); the committed tables stay."""
        if self._writer is not None:
            self._writer.abort()

    @property
    def size_bytes(self) -> int:
        """The bytes of every committed key and value (no pages, no free space)."""
        return sum(table.row_bytes() for table in self.tables.values())

    @property
    def size_in_use_bytes(self) -> int:
        return self.size_bytes

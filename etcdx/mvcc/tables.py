"""The storage interface the store needs: named tables of byte keys and values, sorted by key.

Two implementations: the LMDB file of a member (backend.Backend) and a memory one for tests and the
simulation (memory_backend.MemoryBackend). Nothing else in etcdx talks to storage. Tables are named
by schema.TABLES; keys within a table are compared as unsigned bytes and are 1 to MAX_KEY bytes long
(LMDB's limit; every key etcdx stores is a fixed-size encoding well under it).

Contracts every implementation keeps:
- A read view sees the committed state as of its start and never changes; it ends when its ``with``
  block does (or ``end()``), and iterators it gave are invalid afterwards.
- One write transaction at a time. It reads its own writes; nothing else sees them before ``commit``,
  which makes them visible (and durable, for the file) all at once; ``abort`` drops them. Used as a
  context manager it commits on a normal exit and aborts on an exception.
- ``snapshot()`` is a self-contained image of every table as committed; ``restore(image)`` replaces
  every table with an image's rows in one commit (no write transaction may be open).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

MAX_KEY = 511


class TableView(Protocol):
    """Reads of one consistent state."""

    def get(self, table: bytes, key: bytes) -> bytes | None:
        """The value of ``key``, or None."""

    def get_many(self, table: bytes, keys: list[bytes]) -> list[bytes]:
        """The values of the ``keys`` present, in the order of ``keys`` (missing keys are skipped)."""

    def scan(self, table: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) with key >= ``start``, in key order."""

    def keys(self, table: bytes, start: bytes = b"", stop: bytes | None = None) -> Iterator[bytes]:
        """Every key in [start, stop) (``stop`` None: no bound), in key order."""


class TableWriter(TableView, Protocol):
    """A write transaction: a TableView of the committed state plus its own changes."""

    def put(self, table: bytes, key: bytes, value: bytes) -> None: ...

    def delete(self, table: bytes, key: bytes) -> bool:
        """Removes ``key``; whether it was there."""

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class StorageBackend(Protocol):
    # What a failing store raises: apply lets these stop the member (a request never causes them).
    storage_errors: tuple[type[BaseException], ...]

    def begin_read(self) -> TableView: ...

    def begin_write(self) -> TableWriter: ...

    def get_many(self, table: bytes, keys: list[bytes]) -> list[bytes]:
        """``TableView.get_many`` on the committed state, in a read view of its own (the one-read fast path)."""

    def snapshot(self) -> bytes: ...

    def restore(self, image: bytes) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def size_in_use_bytes(self) -> int: ...

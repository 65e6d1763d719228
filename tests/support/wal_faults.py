"""Faults injected into the WAL's syncs, on whichever path a sync takes: inline on the event loop (WAL.sync_inline
writes through ``write_all``) or as a job on the sync worker's thread (the fault is raised there, by the job's
first run, as an exception from Python code that runs on that thread raises)."""

from __future__ import annotations

import types
from collections.abc import Callable

from etcdx.wal import wal as wal_module


def arm(raise_fault: Callable[[], None], setattr_=setattr) -> None:
    """From now on every WAL sync calls ``raise_fault`` (which raises when the fault is armed) before writing.
    ``setattr_``: pytest's monkeypatch.setattr to undo it after a test; plain setattr in a child process. A WAL
    opened before the call keeps its unarmed sync worker."""
    real_write_all, real_module = wal_module.write_all, wal_module._walsync

    def write_all(fd: int, data: bytes, offset: int) -> None:
        raise_fault()
        real_write_all(fd, data, offset)

    class Worker:
        def __init__(self) -> None:
            self._real = real_module.SyncWorker()

        def submit(self, runs: list, fsync: bool) -> None:
            fd, offset, data, opener = runs[0]

            def faulty_opener() -> int:  # on the sync thread, before the job's first write
                raise_fault()
                return fd if opener is None else opener()

            self._real.submit([(fd, offset, data, faulty_opener), *runs[1:]], fsync)

        def __getattr__(self, name: str):
            return getattr(self._real, name)

    setattr_(wal_module, "write_all", write_all)
    setattr_(wal_module, "_walsync", types.SimpleNamespace(SyncWorker=Worker))

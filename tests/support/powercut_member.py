"""``python -m tests.support.powercut_member ARGS``: etcdx with test-only adjustments, then ``etcdx ARGS``.

The product has no fault switches; this wrapper changes one thing in its own process before the server starts:
- ETCDX_TEST_WAL_SEGMENT_BYTES: WAL segment size (small, so that a short load crosses segment boundaries).
- ETCDX_TEST_PLANT, a planted fault for the power-cut tests to catch:
  - ``wal-fdatasync``: the WAL's fdatasync of appended records does nothing, inline on the event loop and in the
    sync worker's jobs (submitted without fdatasync);
  - ``backend-sync``: LMDB is opened as it was before power-cut hardening (``sync=False, metasync=False``:
    commits are never fsynced themselves; only the server's periodic ``Backend.sync`` flushes them).
"""

from __future__ import annotations

import os
import sys

PLANTS = ("wal-fdatasync", "backend-sync")


class _Proxy:
    """Module stand-in: everything from ``module`` except the names given as keyword overrides."""

    def __init__(self, module, **overrides) -> None:
        self._module = module
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._module, name)


def _set_segment_bytes(size: int) -> None:
    from etcdx.wal.wal import WAL

    original = WAL.open.__func__

    async def open_with_segment_size(cls, directory, **kwargs):
        kwargs["segment_bytes"] = size
        return await original(cls, directory, **kwargs)

    WAL.open = classmethod(open_with_segment_size)


def _plant(fault: str) -> None:
    if fault == "wal-fdatasync":
        from etcdx.wal import wal

        real_worker = wal._walsync.SyncWorker

        class WorkerWithoutFsync:
            def __init__(self) -> None:
                self._real = real_worker()

            def submit(self, runs: list, fsync: bool) -> None:
                self._real.submit(runs, False)

            def __getattr__(self, name):
                return getattr(self._real, name)

        wal.os = _Proxy(os, fdatasync=lambda fd: None)
        wal._walsync = _Proxy(wal._walsync, SyncWorker=WorkerWithoutFsync)
    elif fault == "backend-sync":
        from etcdx.mvcc import backend

        lmdb = backend.lmdb

        def open_unsynced(path, **kwargs):
            kwargs.update(sync=False, metasync=False)
            return lmdb.open(path, **kwargs)

        backend.lmdb = _Proxy(lmdb, open=open_unsynced)
    else:
        raise SystemExit(f"unknown ETCDX_TEST_PLANT {fault!r}; known: {', '.join(PLANTS)}")


def main() -> int:
    if size := os.environ.get("ETCDX_TEST_WAL_SEGMENT_BYTES"):
        _set_segment_bytes(int(size))
    if fault := os.environ.get("ETCDX_TEST_PLANT"):
        _plant(fault)
    from etcdx.cli.main import main as etcdx_main

    return etcdx_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

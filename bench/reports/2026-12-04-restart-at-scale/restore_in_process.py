"""The store restore of a member's start-up, as the tree on PYTHONPATH does it, on an existing LMDB backend.

    PYTHONPATH=/path/to/tree python restore_in_process.py BACKEND_DIR

Prints the restore's seconds, the seconds of the full collection that follows (cli/main.py collects once the
member serves) and the heap (RssAnon) it added. The backend's pages are made resident first, so the figures
leave the page cache out.
"""

from __future__ import annotations

import gc
import sys
import time

from etcdx.lease.lessor import Lessor
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.kvstore import KVStore
from etcdx.mvcc.schema import KEY_DB
from etcdx.server import server


def heap_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon")


def main(path: str) -> None:
    backend = Backend(path)
    with backend.begin_read() as view:
        for _ in view.scan(KEY_DB):
            pass
    restore = getattr(server, "_restore_store", None) or KVStore  # main before this change: KVStore itself
    before = heap_mib()
    began = time.perf_counter()
    store = restore(backend, Lessor(min_ttl=1, clock=lambda: 0.0))
    restored = time.perf_counter() - began
    began = time.perf_counter()
    gc.collect()
    collected = time.perf_counter() - began
    print(
        f"{restore.__name__}: restore {restored:.2f}s, then gc.collect {collected:.2f}s;"
        f" heap +{heap_mib() - before:.0f} MiB (revision {store.current_revision})"
    )


if __name__ == "__main__":
    main(sys.argv[1])

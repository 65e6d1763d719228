"""The store's in-process hot paths on each backend: applying Put entries, and single-key and 100-key Ranges
(range_encoded's stored-bytes path, and a parsed keys_only range) with the batch transaction open and after
its commit.

    python bench/store_paths.py [--backend lmdb|memory|both] [--rounds 5]

Rates are in CPU time of this process (time.process_time), best of --rounds: the machine is shared, and
wall-clock rates move with the other load. Puts: 20,000 Put entries over 1,000 keys, 100 per apply batch,
through Applier.apply as the server applies them (one commit at the end). Ranges: over 1,000 keys.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from etcdx.lease.lessor import Lessor  # noqa: E402
from etcdx.mvcc.alarms import Alarms  # noqa: E402
from etcdx.mvcc.backend import Backend  # noqa: E402
from etcdx.mvcc.kvstore import KVStore  # noqa: E402
from etcdx.mvcc.memory_backend import MemoryBackend  # noqa: E402
from etcdx.mvcc.tables import StorageBackend  # noqa: E402
from etcdx.pb.etcdserverpb import rpc_pb2  # noqa: E402
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest  # noqa: E402
from etcdx.server.apply import Applier  # noqa: E402

PUTS, KEYS, BATCH = 20_000, 1_000, 100


def _best_rate(run: Callable[[], None], count: int, rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        start = time.process_time()
        run()
        best = max(best, count / (time.process_time() - start))
    return best


def _open_store(kind: str, path: str) -> tuple[StorageBackend, KVStore, Applier]:
    backend = Backend(path, map_size=1 << 30) if kind == "lmdb" else MemoryBackend()
    lessor = Lessor(min_ttl=1, clock=lambda: 0.0)
    store = KVStore(backend, lessor)
    return backend, store, Applier(store, lessor, Alarms())


def _apply_all(store: KVStore, applier: Applier, entries: list[bytes]) -> None:
    for first in range(0, len(entries), BATCH):
        with store.apply_batch():
            for n in range(first, min(first + BATCH, len(entries))):
                applier.apply(n + 1, entries[n])
    store.commit()


def _put_entries(count: int) -> list[bytes]:
    return [
        InternalRequest(put=rpc_pb2.PutRequest(key=b"k/%06d" % (n % KEYS), value=b"v" * 64)).SerializeToString()
        for n in range(count)
    ]


def put_rate(kind: str, rounds: int) -> float:
    entries = _put_entries(PUTS)
    best = 0.0
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="etcdx-storebench-") as path:
            backend, store, applier = _open_store(kind, path)
            best = max(best, _best_rate(lambda: _apply_all(store, applier, entries), PUTS, 1))  # noqa: B023
            backend.close()
    return best


def range_rates(kind: str, rounds: int) -> dict[str, float]:
    cases = {
        "range_encoded 1 key": (rpc_pb2.RangeRequest(key=b"k/000500"), 20_000),
        "range keys_only 1 key": (rpc_pb2.RangeRequest(key=b"k/000500", keys_only=True), 20_000),
        "range keys_only 100 keys": (rpc_pb2.RangeRequest(key=b"k/000100", range_end=b"k/000200", keys_only=True), 500),
    }
    rates = {}
    with tempfile.TemporaryDirectory(prefix="etcdx-storebench-") as path:
        backend, store, applier = _open_store(kind, path)
        with store.apply_batch():  # left open: the first reads go through it
            for n, entry in enumerate(_put_entries(KEYS)):
                applier.apply(n + 1, entry)
        header = rpc_pb2.ResponseHeader()
        for mode in ("batch open", "committed"):
            if mode == "committed":
                store.commit()
            for name, (request, count) in cases.items():
                read = store.range if request.keys_only else (lambda r: store.range_encoded(r, header))

                def run(read=read, request=request, count=count) -> None:
                    for _ in range(count):
                        read(request)

                rates[f"{name}, {mode}"] = _best_rate(run, count, rounds)
        backend.close()
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["lmdb", "memory", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for kind in ("lmdb", "memory") if args.backend == "both" else (args.backend,):
        print(f"{kind:<7} {'apply Put entries':<38} {put_rate(kind, args.rounds):>10,.0f} /s")
        for name, rate in range_rates(kind, args.rounds).items():
            print(f"{kind:<7} {name:<38} {rate:>10,.0f} /s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

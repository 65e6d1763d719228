"""Reads through the open batch transaction versus a read transaction of the committed file, in process.

    python bench/read_through_batch.py [--keys 1000] [--seconds 1]

Fills a KVStore on a real LMDB file with --keys keys, then times ``range_encoded`` (its stored-bytes fast path:
one key; 100 keys of a prefix) and ``range`` (a parsed response: keys_only) with the batch transaction open
(every key applied but not committed) and after the commit (each read opens a read transaction). Prints
reads/s per case and mode, median of 3 alternated runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from etcdx.mvcc.alarms import Alarms  # noqa: E402
from etcdx.mvcc.backend import Backend  # noqa: E402
from etcdx.mvcc.kvstore import KVStore  # noqa: E402
from etcdx.pb.etcdserverpb import rpc_pb2  # noqa: E402
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest  # noqa: E402
from etcdx.server.apply import Applier  # noqa: E402

CASES = {
    "range_encoded one key": rpc_pb2.RangeRequest(key=b"k/000500"),
    "range_encoded 100 keys": rpc_pb2.RangeRequest(key=b"k/", range_end=b"k0", limit=100),
    "range keys_only 100 keys": rpc_pb2.RangeRequest(key=b"k/", range_end=b"k0", limit=100, keys_only=True),
}


def _rate(store: KVStore, request: rpc_pb2.RangeRequest, seconds: float) -> float:
    header = rpc_pb2.ResponseHeader()
    read = store.range if request.keys_only else (lambda r: store.range_encoded(r, header))
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            read(request)
        done += 100
    return done / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="etcdx-readbench-") as path:
        backend = Backend(path, map_size=1 << 30)
        store = KVStore(backend)
        applier = Applier(store, store.lessor, Alarms())
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(3):
            with store.apply_batch():
                for n in range(args.keys):
                    put = rpc_pb2.PutRequest(key=b"k/%06d" % n, value=b"v" * 64)
                    applier.apply_request(store.consistent_index + 1, InternalRequest(put=put))
            for mode in ("batch transaction open", "committed"):
                if mode == "committed":
                    store.commit()
                for case, request in CASES.items():
                    rates.setdefault((case, mode), []).append(_rate(store, request, args.seconds))
        backend.close()
    for (case, mode), values in rates.items():
        print(f"{case:<26} {mode:<24} {statistics.median(values):>9.0f} reads/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

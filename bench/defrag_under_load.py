"""Defragmentation under a light load: how long a Defragment takes, how much it shrinks the file, and
what the clients doing puts and reads meanwhile see (failures, worst latency), for etcdx and etcd 3.5.1.

Run: python bench/defrag_under_load.py [--live-mb 32] [--garbage-mb 32] [--defrags 5] [--clients 4] [--etcd]
Each server gets --live-mb of values that stay and --garbage-mb that are deleted and compacted away
before the first defragmentation. Every client loops put-then-read of its own keys (and one watcher
follows them all) from before the first Defragment until after the last; the script prints the figures
and exits non-zero if any request failed or the watcher missed an event.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from tests.compat.watch_client import RecordingWatch  # noqa: E402
from tests.support.procs import etcd_process, etcdx_process  # noqa: E402

VALUE = b"v" * 4096
OPS_PER_TXN = 64


@dataclass
class Figures:
    size_before: int = 0
    sizes_after: list[int] = field(default_factory=list)
    defrag_seconds: list[float] = field(default_factory=list)
    ops: int = 0
    ops_during_defrags: int = 0
    worst_latency: float = 0.0
    failures: list[str] = field(default_factory=list)
    watch_missed: int = 0


def preload(kv: rpc_pb2_grpc.KVStub, prefix: bytes, megabytes: int) -> None:
    count = megabytes * 1024 * 1024 // len(VALUE)
    for start in range(0, count, OPS_PER_TXN):
        ops = [
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"%s/%08d" % (prefix, i), value=VALUE))
            for i in range(start, min(count, start + OPS_PER_TXN))
        ]
        kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=30)


def client(endpoint: str, number: int, stop: threading.Event, figures: Figures, lock, revisions: list[int]) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        i = 0
        while not stop.is_set():
            key = b"load/%02d/%08d" % (number, i)
            started = time.monotonic()
            try:
                revision = kv.Put(rpc_pb2.PutRequest(key=key, value=b"%d" % i), timeout=30).header.revision
                assert kv.Range(rpc_pb2.RangeRequest(key=key), timeout=30).kvs[0].value == b"%d" % i
            except (grpc.RpcError, AssertionError, IndexError) as failed:
                with lock:
                    figures.failures.append(repr(failed))
                return
            with lock:
                figures.ops += 2
                figures.worst_latency = max(figures.worst_latency, time.monotonic() - started)
                revisions.append(revision)
            i += 1


def run(server, args) -> Figures:
    figures, lock, stop, revisions = Figures(), threading.Lock(), threading.Event(), []
    with grpc.insecure_channel(server.endpoint) as channel:
        kv, maintenance = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.MaintenanceStub(channel)
        preload(kv, b"live", args.live_mb)
        preload(kv, b"garbage", args.garbage_mb)
        kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"garbage/", range_end=b"garbage0"), timeout=60)
        start = kv.Range(rpc_pb2.RangeRequest(key=b"x")).header.revision
        kv.Compact(rpc_pb2.CompactionRequest(revision=start, physical=True), timeout=120)
        figures.size_before = maintenance.Status(rpc_pb2.StatusRequest()).dbSize
        watcher = RecordingWatch(server.endpoint)
        watcher.create(rpc_pb2.WatchCreateRequest(key=b"load/", range_end=b"load0", start_revision=start + 1))
        threads = [
            threading.Thread(target=client, args=(server.endpoint, n, stop, figures, lock, revisions))
            for n in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        for _ in range(args.defrags):
            ops_before, started = figures.ops, time.monotonic()
            maintenance.Defragment(rpc_pb2.DefragmentRequest(), timeout=300)
            figures.defrag_seconds.append(time.monotonic() - started)
            figures.ops_during_defrags += figures.ops - ops_before
            figures.sizes_after.append(maintenance.Status(rpc_pb2.StatusRequest()).dbSize)
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        if revisions:
            last = max(revisions)
            with contextlib.suppress(TimeoutError):  # counted as missed below
                watcher.wait_for(lambda r: any(e.kv.mod_revision == last for e in r.events), 0, timeout=30)
        seen = {e.kv.mod_revision for r in watcher.responses for e in r.events}
        figures.watch_missed = len(set(revisions) - seen)
        watcher.close()
    return figures


def report(name: str, f: Figures) -> None:
    mib = 1024 * 1024
    print(
        f"{name}: db {f.size_before / mib:.1f} MiB -> {f.sizes_after[0] / mib:.1f} MiB after the first defrag;"
        f" defrag {min(f.defrag_seconds) * 1000:.0f}-{max(f.defrag_seconds) * 1000:.0f} ms;"
        f" {f.ops} requests ({f.ops_during_defrags} completed while a Defragment was in flight),"
        f" worst put+read {f.worst_latency * 1000:.0f} ms; failed {len(f.failures)}; watch missed {f.watch_missed}"
    )
    for failure in f.failures[:5]:
        print("  ", failure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live-mb", type=int, default=32)
    parser.add_argument("--garbage-mb", type=int, default=32)
    parser.add_argument("--defrags", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--etcd", action="store_true", help="also run against etcd 3.5.1")
    args = parser.parse_args()
    ok = True
    with TemporaryDirectory() as tmp:
        servers = [("etcdx", etcdx_process)] + ([("etcd 3.5.1", etcd_process)] if args.etcd else [])
        for name, process in servers:
            with process(Path(tmp)).start() as server:
                figures = run(server, args)
            report(name, figures)
            ok = ok and not figures.failures and not figures.watch_missed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

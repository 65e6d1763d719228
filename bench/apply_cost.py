"""Apply cost of a Put and of a Kubernetes-style update Txn, in-process (no server, no network, no fsync).

    python bench/apply_cost.py [--rounds 5] [--count 10000]
    PYTHONPATH=/path/to/other/tree python bench/apply_cost.py     # the same for another source tree (A/B)

A KVStore with its Applier on a real LMDB file in a temporary directory, 1,000 keys of 256-byte values put first.
Each entry is applied as the server's apply loop does (Applier.apply of the serialized InternalRequest inside an
apply batch; the batch is committed every 100 entries). The Txn is Txn(if mod_revision(key) > 0 then Put(key) else
Range(key)); its compare always holds, so the entries can be built before timing. Prints the microseconds per
entry, the minimum over the rounds (the least disturbed). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from etcdx.mvcc.alarms import Alarms
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.kvstore import KVStore
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.apply import Applier

KEYS = [b"/registry/cas/0000001/%05d" % i for i in range(1000)]
VALUE = b"v" * 256


def put_entry(key: bytes) -> bytes:
    return InternalRequest(id=1, put=rpc_pb2.PutRequest(key=key, value=VALUE)).SerializeToString()


def txn_entry(key: bytes) -> bytes:
    compare = rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.GREATER, mod_revision=0)
    txn = rpc_pb2.TxnRequest(
        compare=[compare],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=VALUE))],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
    )
    return InternalRequest(id=1, txn=txn).SerializeToString()


def time_entries(kv: KVStore, applier: Applier, entries: list[bytes], count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        with kv.apply_batch():
            applier.apply(kv.consistent_index + 1, entries[i % len(entries)])
        if i % 100 == 99:
            kv.commit()
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="etcdx-apply-cost-") as path:
        kv = KVStore(Backend(path, map_size=4 << 30))
        applier = Applier(kv, kv.lessor, Alarms())
        puts, txns = [put_entry(k) for k in KEYS], [txn_entry(k) for k in KEYS]
        time_entries(kv, applier, puts, len(puts))
        samples: dict[str, list[float]] = {"put": [], "txn": []}
        for _ in range(args.rounds):
            samples["put"].append(time_entries(kv, applier, puts, args.count))
            samples["txn"].append(time_entries(kv, applier, txns, args.count))
        for name, values in samples.items():
            print(f"{name}: {min(values):.2f} us per entry (min of {args.rounds} rounds of {args.count})")


if __name__ == "__main__":
    main()

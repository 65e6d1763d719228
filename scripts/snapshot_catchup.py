"""Catch-up by snapshot at size: a 3-member etcdx cluster, one follower killed (kill -9) while --keys keys of
--value-bytes land (in txns of 100 puts), then restarted: it must catch up by snapshot.

    python scripts/snapshot_catchup.py [--keys 20000] [--value-bytes 1024] [--snapshot-count 1000]

Prints the snapshot the member installed (index, image size, the install's own time from its log), the time
from its restart to serving, and whether HashKV at the last revision and a serializable count agree on every
member; exits 1 if they do not or no snapshot was installed. CI runs 500 single puts
(tests/integration/test_catch_up_by_snapshot.py).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import etcdx_cluster, kill_leftovers


def maintenance(member):
    return rpc_pb2_grpc.MaintenanceStub(grpc.insecure_channel(member.endpoint))


def records(member, message: str) -> list[dict]:
    with open(member.log_path, errors="replace") as f:
        return [json.loads(line) for line in f if f'"msg":"{message}"' in line]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument("--snapshot-count", type=int, default=1000)
    args = parser.parse_args()
    flags = ("--snapshot-count", str(args.snapshot_count), "--experimental-snapshot-catchup-entries", "50")
    with tempfile.TemporaryDirectory(prefix="snapshot-catchup-") as tmp:
        members = etcdx_cluster(Path(tmp), 3, flags)
        try:
            for member in members:
                member.launch()
            for member in members:
                member.wait_ready()
            statuses = [maintenance(m).Status(rpc_pb2.StatusRequest(), timeout=5) for m in members]
            leader = statuses[0].leader
            lagging = next(m for m, s in zip(members, statuses, strict=True) if s.header.member_id != leader)
            live = next(m for m, s in zip(members, statuses, strict=True) if s.header.member_id == leader)
            lagging.kill9()
            kv = rpc_pb2_grpc.KVStub(grpc.insecure_channel(live.endpoint))
            rng = random.Random(1)  # incompressible values: the image is as large as the data
            started = time.monotonic()
            last = 0
            for first in range(0, args.keys, 100):
                puts = [
                    rpc_pb2.PutRequest(key=b"k/%08d" % n, value=rng.randbytes(args.value_bytes))
                    for n in range(first, min(first + 100, args.keys))
                ]
                ops = [rpc_pb2.RequestOp(request_put=put) for put in puts]
                last = kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=30).header.revision
            for n in range(args.snapshot_count + 100):  # entries past --snapshot-count: the log is compacted
                last = kv.Put(rpc_pb2.PutRequest(key=b"tail/%d" % (n % 10), value=b"t"), timeout=30).header.revision
            loaded = time.monotonic() - started
            time.sleep(1)
            restarted = time.monotonic()
            lagging.launch()
            lagging.wait_ready()
            serving = time.monotonic() - restarted
            applied = records(lagging, "applied snapshot")
            hashes = {maintenance(m).HashKV(rpc_pb2.HashKVRequest(revision=last), timeout=60).hash for m in members}
            counts = set()
            for m in members:
                request = rpc_pb2.RangeRequest(key=b"k/", range_end=b"k0", count_only=True, serializable=True)
                counts.add(rpc_pb2_grpc.KVStub(grpc.insecure_channel(m.endpoint)).Range(request, timeout=30).count)
            sent = records(live, "sent database snapshot")
            print(
                f"keys={args.keys} value_bytes={args.value_bytes} load={loaded:.1f}s "
                f"snapshot_index={applied[-1]['incoming_leader_snapshot_index'] if applied else None} "
                f"image_bytes={sent[-1]['size'] if sent else None} "
                f"install={applied[-1]['took'] if applied else None} restart_to_serving={serving:.1f}s "
                f"hashkv_equal={len(hashes) == 1} counts={sorted(counts)}"
            )
            return 0 if applied and len(hashes) == 1 and counts == {args.keys} else 1
        finally:
            for member in members:
                member.stop()
            kill_leftovers()


if __name__ == "__main__":
    sys.exit(main())

"""Maintenance.Snapshot, Hash and HashKV on a live etcdx member.

HashKV is differential: the same operations on etcdx and on etcd 3.5.1 give the same hash, compacted
revision and header revision at every revision asked (etcd hashes the key table's rows, which etcdx
stores byte for byte as etcd does), and the same errors. Snapshot is checked with the real etcdctl 3.5.1
and 3.4: `snapshot save` accepts the stream, and the file holds the member's rows.
"""

from __future__ import annotations

import random
import subprocess

import grpc
import pytest

from etcdx.mvcc import backend_image, snapshot_file
from etcdx.mvcc.schema import KEY_DB, LEASE_DB
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.pb.mvccpb import kv_pb2
from tests.support.procs import ETCDCTL, ETCDCTL_34


def _operations(seed: int, count: int) -> list[tuple]:
    rng = random.Random(seed)
    keys = [f"k{i:02d}".encode() for i in range(12)]
    ops: list[tuple] = [("lease",)]
    for n in range(count):
        roll = rng.random()
        if roll < 0.55:
            ops.append(("put", rng.choice(keys), rng.randbytes(rng.randrange(0, 40)), rng.random() < 0.2))
        elif roll < 0.75:
            ops.append(("delete", rng.choice(keys)))
        elif roll < 0.9:
            ops.append(("txn", rng.sample(keys, 3)))
        elif n > count // 3:
            ops.append(("compact", rng.random()))
    return ops


def _apply(channel: grpc.Channel, ops: list[tuple]) -> None:
    kv = rpc_pb2_grpc.KVStub(channel)
    lease_id = 0
    for op in ops:
        if op[0] == "lease":
            grant = rpc_pb2.LeaseGrantRequest(TTL=600, ID=0x1234)  # the same id on both: a KeyValue holds it
            lease_id = rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(grant).ID
        elif op[0] == "put":
            kv.Put(rpc_pb2.PutRequest(key=op[1], value=op[2], lease=lease_id if op[3] else 0))
        elif op[0] == "delete":
            kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=op[1]))
        elif op[0] == "txn":
            puts = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=b"t")) for k in op[1]]
            kv.Txn(rpc_pb2.TxnRequest(success=puts))
        else:
            current = kv.Range(rpc_pb2.RangeRequest(key=b"k")).header.revision
            compacted = _hash_kv(channel, 0)[1]
            target = max(compacted + 1, int(current * op[1]))
            if target <= current:
                kv.Compact(rpc_pb2.CompactionRequest(revision=target, physical=True))


def _hash_kv(channel: grpc.Channel, revision: int) -> tuple:
    try:
        r = rpc_pb2_grpc.MaintenanceStub(channel).HashKV(rpc_pb2.HashKVRequest(revision=revision))
    except grpc.RpcError as exc:
        return ("error", exc.code(), exc.details())
    return (r.hash, r.compact_revision, r.header.revision)


def _hashes(endpoint: str, ops: list[tuple]) -> list[tuple]:
    with grpc.insecure_channel(endpoint) as channel:
        _apply(channel, ops)
        current = _hash_kv(channel, 0)[2]
        return [(rev, _hash_kv(channel, rev)) for rev in range(0, current + 3)]


@pytest.mark.parametrize("seed", [1, 2])
def test_hash_kv_equals_etcds(etcdx_server, etcd_server, seed):
    ops = _operations(seed, 150)
    ours, theirs = _hashes(etcdx_server.endpoint, ops), _hashes(etcd_server.endpoint, ops)
    assert ours == theirs
    assert any(isinstance(h[0], int) and h[1] > 0 for _, h in ours), "the sequence compacted"
    assert any(h[0] == "error" for _, h in ours), "compacted and future revisions were asked"


def test_hash_changes_with_the_data(etcdx_server):
    with grpc.insecure_channel(etcdx_server.endpoint) as channel:
        maintenance, kv = rpc_pb2_grpc.MaintenanceStub(channel), rpc_pb2_grpc.KVStub(channel)
        before = maintenance.Hash(rpc_pb2.HashRequest())
        kv.Put(rpc_pb2.PutRequest(key=b"a", value=b"1"))
        after = maintenance.Hash(rpc_pb2.HashRequest())
        assert after.hash != before.hash
        assert after.header.revision == before.header.revision + 1
        assert maintenance.Hash(rpc_pb2.HashRequest()).hash == after.hash


@pytest.mark.parametrize("binary", [ETCDCTL, ETCDCTL_34], ids=["etcdctl-3.5", "etcdctl-3.4"])
def test_etcdctl_snapshot_save_holds_the_rows(etcdx_server, tmp_path, binary):
    with grpc.insecure_channel(etcdx_server.endpoint) as channel:
        lease = rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=300)).ID
        kv = rpc_pb2_grpc.KVStub(channel)
        for i in range(3000):  # an image of several 32 KiB chunks
            kv.Put(rpc_pb2.PutRequest(key=b"key-%05d" % i, value=random.randbytes(40), lease=lease if i % 2 else 0))
    path = tmp_path / "saved.db"
    done = subprocess.run(
        [binary, "--endpoints", etcdx_server.endpoint, "snapshot", "save", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"ETCDCTL_API": "3"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Snapshot saved at {path}\n"
    data = path.read_bytes()
    assert snapshot_file.has_digest(data) and snapshot_file.digest_matches(data)
    tables = backend_image.decode(snapshot_file.image_of(data[: -snapshot_file.DIGEST]))
    values = [kv_pb2.KeyValue.FromString(v) for _, v in tables[KEY_DB]]
    assert [v.key for v in values] == [b"key-%05d" % i for i in range(3000)]
    assert [v.mod_revision for v in values] == list(range(2, 3002))
    assert len(tables[LEASE_DB]) == 1
    assert '"msg":"sent database snapshot to client"' in etcdx_server.log_tail()

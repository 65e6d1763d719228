"""The bbolt reader on files real etcd 3.5.1 wrote (`etcdctl snapshot save`), checked against etcd itself.

The data set makes every page kind appear: a key bucket spread over branch and leaf pages, a value larger
than a page (overflow pages), and small buckets stored inline in their parent. Damaged files give BoltError
(never another exception); a damaged first meta page falls back to the second.
"""

from __future__ import annotations

import random
import struct

import grpc
import pytest

from etcdx.bbolt.reader import BRANCH, BoltError, BoltFile
from etcdx.mvcc.revision import parse_backend_key
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.pb.mvccpb import kv_pb2
from tests.support import snapshot_migration as migration

ETCD_BUCKETS = {b"alarm", b"auth", b"authRoles", b"authUsers", b"cluster", b"key", b"lease", b"members"}
ETCD_BUCKETS |= {b"members_removed", b"meta"}


@pytest.fixture
def etcd_file(etcd_server, tmp_path):
    with grpc.insecure_channel(etcd_server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for i in range(2500):
            kv.Put(rpc_pb2.PutRequest(key=b"k%05d" % (i % 1200), value=b"v%d" % i))
        kv.Put(rpc_pb2.PutRequest(key=b"big", value=bytes(range(256)) * 100))  # 25,600 bytes: overflow pages
        latest = kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0")).kvs
    path = tmp_path / "etcd.db"
    migration.save(etcd_server.endpoint, path)
    return path.read_bytes()[:-32], latest


def test_reads_every_row_etcd_wrote(etcd_file):
    data, latest = etcd_file
    bolt = BoltFile(data)
    buckets = bolt.buckets()
    assert set(buckets) == ETCD_BUCKETS
    key_root = buckets[b"key"][0]
    assert struct.unpack_from("<H", data, key_root * bolt.page_size + 8)[0] == BRANCH
    assert buckets[b"meta"][0] == 0  # inline
    rows = bolt.items(b"key")
    assert [parse_backend_key(k)[0] >> 32 for k, _ in rows] == list(range(2, 2503))
    newest = {}
    for _, value in rows:
        kv = kv_pb2.KeyValue.FromString(value)
        newest[kv.key] = kv
    assert sorted(newest.values(), key=lambda kv: kv.key) == list(latest)
    assert newest[b"big"].value == bytes(range(256)) * 100
    assert dict(bolt.items(b"meta"))[b"consistent_index"]


def test_first_meta_damaged_falls_back_to_the_second(etcd_file):
    data, _ = etcd_file
    good = BoltFile(data)
    damaged = bytearray(data)
    damaged[16 + 40] ^= 0x01  # page 0's txid: its checksum no longer matches
    fallback = BoltFile(bytes(damaged))
    assert fallback.txid == good.txid - 1
    assert fallback.items(b"key") == good.items(b"key")


def test_damage_gives_bolt_error(etcd_file):
    data, _ = etcd_file
    with pytest.raises(BoltError):
        BoltFile(b"not a bbolt file at all" * 300)
    with pytest.raises(BoltError):
        BoltFile(data[: len(data) // 2])
    rng = random.Random(5)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            damaged[rng.randrange(2 * 4096, len(damaged))] = rng.randrange(256)
        try:
            bolt = BoltFile(bytes(damaged))
            for name in bolt.buckets():
                bolt.items(name)
            outcomes["read"] += 1
        except BoltError:
            outcomes["refused"] += 1
    assert outcomes["read"] + outcomes["refused"] == 300

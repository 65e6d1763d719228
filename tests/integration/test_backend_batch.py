"""The batch transaction on a running member: clients read and watch every applied write while the backend file
holds only what a commit wrote (read here by a second LMDB reader, as a restart would read it); the batch commits
at --backend-batch-limit entries and on a clean stop, and a kill -9 before any commit loses nothing
acknowledged (the WAL replays it)."""

from __future__ import annotations

import os
import struct

import grpc
import lmdb

from etcdx.mvcc import schema
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import etcdx_process

KEYS = 30


def committed_index(data_dir: str) -> int:
    """The consistent index of the last commit in the member's backend file (0 before the first)."""
    env = lmdb.open(os.path.join(data_dir, "member", "kv"), readonly=True, max_dbs=8, lock=True)
    try:
        meta = env.open_db(schema.META_DB)
        with env.begin() as txn:
            raw = txn.get(schema.META_CONSISTENT_INDEX, db=meta)
        return 0 if raw is None else struct.unpack(">Q", raw)[0] - (1 << 63)
    finally:
        env.close()


def put_and_read_back(endpoint: str, count: int) -> tuple[int, list[tuple[bytes, bytes]]]:
    """Puts ``count`` keys one by one, each read back at once; returns the last revision and every watched
    event from revision 2 (a watcher that starts in the past catches up from the store's history)."""
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for n in range(count):
            key = b"batch/%03d" % n
            revision = kv.Put(rpc_pb2.PutRequest(key=key, value=b"v%d" % n), timeout=10).header.revision
            assert kv.Range(rpc_pb2.RangeRequest(key=key), timeout=10).kvs[0].value == b"v%d" % n
        counted = kv.Range(rpc_pb2.RangeRequest(key=b"batch/", range_end=b"batch0", count_only=True), timeout=10)
        assert counted.count == count
        watch = rpc_pb2_grpc.WatchStub(channel)
        create = rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(key=b"batch/", range_end=b"batch0", start_revision=2)
        )
        events = []
        stream = watch.Watch(iter([create]), timeout=10)
        for response in stream:
            events += [(e.kv.key, e.kv.value) for e in response.events]
            if len(events) >= count:
                break
        stream.cancel()
    return revision, events


def test_reads_and_watchers_see_uncommitted_writes_and_a_kill_loses_none(tmp_path):
    member = etcdx_process(tmp_path, extra_args=("--backend-batch-interval", "1h")).start()
    try:
        start_index = committed_index(member.data_dir)
        revision, events = put_and_read_back(member.endpoint, KEYS)
        assert events == [(b"batch/%03d" % n, b"v%d" % n) for n in range(KEYS)]
        assert committed_index(member.data_dir) == start_index  # nothing committed in the hour's batch
        member.kill9()
        member.start()
        with grpc.insecure_channel(member.endpoint) as channel:
            found = rpc_pb2_grpc.KVStub(channel).Range(
                rpc_pb2.RangeRequest(key=b"batch/", range_end=b"batch0"), timeout=10
            )
        assert [(kv.key, kv.value) for kv in found.kvs] == [(b"batch/%03d" % n, b"v%d" % n) for n in range(KEYS)]
        assert found.header.revision == revision
    finally:
        member.stop()
    assert committed_index(member.data_dir) >= KEYS  # a clean stop commits the batch


def test_the_batch_commits_at_the_entry_limit(tmp_path):
    limit = 10
    args = ("--backend-batch-interval", "1h", "--backend-batch-limit", str(limit))
    with etcdx_process(tmp_path, extra_args=args).start() as member:
        start_index = committed_index(member.data_dir)
        put_and_read_back(member.endpoint, KEYS)
        with grpc.insecure_channel(member.endpoint) as channel:
            applied = rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest()).raftAppliedIndex
        committed = committed_index(member.data_dir)
        assert start_index < committed <= applied
        assert applied - committed < limit


def test_a_defragmentation_commits_the_batch_first_even_one_without_entries(tmp_path):
    """The member's first Ready applies the empty entry of its term: the batch transaction is open from the
    start, and a defragmentation right then must commit it before its copy and swap."""
    with etcdx_process(tmp_path, extra_args=("--backend-batch-interval", "1h")).start() as member:
        with grpc.insecure_channel(member.endpoint) as channel:
            rpc_pb2_grpc.MaintenanceStub(channel).Defragment(rpc_pb2.DefragmentRequest(), timeout=30)
            kv = rpc_pb2_grpc.KVStub(channel)
            kv.Put(rpc_pb2.PutRequest(key=b"after", value=b"defrag"), timeout=10)
            assert kv.Range(rpc_pb2.RangeRequest(key=b"after"), timeout=10).kvs[0].value == b"defrag"
        member.stop()
        member.start()
        with grpc.insecure_channel(member.endpoint) as channel:
            found = rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"after"), timeout=10)
        assert [kv.value for kv in found.kvs] == [b"defrag"]

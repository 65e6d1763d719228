"""--force-new-cluster, as etcd's disaster recovery uses it: the last member of a cluster that lost its quorum for
good restarts alone with its data, as the only member of the same cluster; then new members can be added."""

from __future__ import annotations

import dataclasses
import subprocess

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import ETCDCTL, etcdx_cluster, start_cluster, stop_cluster

KEYS = 20


def _kv_state(endpoint: str) -> tuple[list[tuple[bytes, bytes, int]], int, int]:
    with grpc.insecure_channel(endpoint) as channel:
        got = rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"k", range_end=b"l"), timeout=10)
    return [(kv.key, kv.value, kv.mod_revision) for kv in got.kvs], got.header.revision, got.header.cluster_id


def _members(endpoint: str) -> list[tuple[int, str]]:
    with grpc.insecure_channel(endpoint) as channel:
        listed = rpc_pb2_grpc.ClusterStub(channel).MemberList(rpc_pb2.MemberListRequest(), timeout=10)
    return sorted((m.ID, m.name) for m in listed.members)


def test_a_survivor_restarts_as_a_new_one_member_cluster_with_its_data(tmp_path):
    members = start_cluster(etcdx_cluster(tmp_path, 3))
    try:
        with grpc.insecure_channel(members[0].endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            for n in range(KEYS):
                kv.Put(rpc_pb2.PutRequest(key=b"k%02d" % n, value=b"v%d" % n), timeout=10)
        before, revision, cluster_id = _kv_state(members[0].endpoint)
        ids = _members(members[0].endpoint)
    finally:
        stop_cluster(members)
    assert len(before) == KEYS

    survivor = members[1]
    forced = dataclasses.replace(survivor, argv=[*survivor.argv, "--force-new-cluster"], proc=None)
    with forced.start():  # alone: without the flag it would wait for a quorum that is gone
        assert _kv_state(forced.endpoint) == (before, revision, cluster_id)
        mine = [(i, name) for i, name in ids if name == "m1"]
        assert _members(forced.endpoint) == mine
        with grpc.insecure_channel(forced.endpoint) as channel:
            put = rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"k-after", value=b"x"), timeout=10)
        assert put.header.revision == revision + 1
        listed = subprocess.run(
            [ETCDCTL, "--endpoints", forced.endpoint, "member", "list"], capture_output=True, text=True, check=True
        )
        assert len(listed.stdout.splitlines()) == 1
    assert "forcing restart member" in forced.log_tail(400)

    # Later restarts, without the flag, stay the one-member cluster it became.
    again = dataclasses.replace(survivor, proc=None)
    with again.start():
        after, _, _ = _kv_state(again.endpoint)
        assert [kv for kv in after if kv[0] != b"k-after"] == before
        assert _members(again.endpoint) == mine


def test_discovery_flags_fail_with_the_reason(tmp_path):
    for flag in ("--discovery=https://discovery.etcd.io/x", "--discovery-srv=example.com"):
        done = subprocess.run(
            ["python", "-m", "etcdx", flag, "--data-dir", str(tmp_path / "d")], capture_output=True, text=True
        )
        assert done.returncode != 0
        assert "needs a discovery service outside this cluster" in done.stderr

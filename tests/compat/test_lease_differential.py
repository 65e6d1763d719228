"""Lease responses of etcd 3.5.1 and etcdx for the same seeded workloads must be identical.

Leases are granted with explicit IDs (server-chosen IDs are time-based on both). The remaining TTL
of TimeToLive is compared within one second (it is truncated from a clock reading on each server);
everything else is compared exactly, after dropping the server identity from headers.
"""

from __future__ import annotations

import random

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import etcd_process, etcdx_process

SEEDS = range(8)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leasediff")
    with etcd_process(tmp).start() as etcd, etcdx_process(tmp).start() as etcdx:
        yield etcd, etcdx


def outcome(call, request) -> dict:
    try:
        response = call(request, timeout=10)
    except grpc.RpcError as exc:
        return {"error": [exc.code().name, exc.details()]}
    result = MessageToDict(response, preserving_proto_field_name=True)
    for field in ("cluster_id", "member_id", "raft_term"):
        result.get("header", {}).pop(field, None)
    return result


def workload(seed: int) -> list[tuple[str, str, object]]:
    rng = random.Random(seed)
    base = (seed + 1) * 1000
    ids = [base + i for i in range(3)] + [-base]  # clients may choose negative int64 IDs
    ops: list[tuple[str, str, object]] = []
    for lease_id in ids:
        ttl = rng.choice([0, 1, 2, 5, 60, 9_000_000_001])
        ops.append(("lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(ID=lease_id, TTL=ttl)))
    for _ in range(25):
        roll = rng.random()
        lease_id = rng.choice(ids + [base + 99])
        key = b"lease%d/%d" % (seed, rng.randrange(6))
        if roll < 0.35:
            ops.append(("kv", "Put", rpc_pb2.PutRequest(key=key, value=b"v", lease=lease_id)))
        elif roll < 0.45:
            ops.append(("kv", "Put", rpc_pb2.PutRequest(key=key, value=b"v")))
        elif roll < 0.55:
            ops.append(("kv", "DeleteRange", rpc_pb2.DeleteRangeRequest(key=key)))
        elif roll < 0.7:
            ops.append(("lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=True)))
        elif roll < 0.8:
            ops.append(("lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lease_id)))
        elif roll < 0.9:
            ops.append(("lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(ID=lease_id, TTL=30)))
        else:
            ops.append(("kv", "Range", rpc_pb2.RangeRequest(key=b"lease%d/" % seed, range_end=b"lease%d0" % seed)))
    ops.append(("lease", "LeaseLeases", rpc_pb2.LeaseLeasesRequest()))
    return ops


def comparable(result: dict, method: str) -> dict:
    if "keys" in result:
        result = dict(result, keys=sorted(result["keys"]))  # etcd lists them in Go map order
    if method == "LeaseLeases":
        result = dict(result, leases=sorted((lease["ID"] for lease in result.get("leases", [])), key=int))
    return result


@pytest.mark.parametrize("seed", SEEDS)
def test_lease_responses_match_etcd(servers, seed):
    channels = [grpc.insecure_channel(s.endpoint) for s in servers]
    stubs = [{"kv": rpc_pb2_grpc.KVStub(c), "lease": rpc_pb2_grpc.LeaseStub(c)} for c in channels]
    try:
        for index, (service, method, request) in enumerate(workload(seed)):
            expected, actual = (comparable(outcome(getattr(s[service], method), request), method) for s in stubs)
            if method == "LeaseLeases":
                ours = {i for i in expected["leases"] if abs(int(i)) // 1000 == seed + 1}
                theirs = {i for i in actual["leases"] if abs(int(i)) // 1000 == seed + 1}
                assert theirs == ours, f"seed {seed} op {index} {method}"
                continue
            if method == "LeaseTimeToLive" and int(expected.get("TTL", 0)) > 0:
                assert abs(int(actual.get("TTL", 0)) - int(expected["TTL"])) <= 1, f"seed {seed} op {index}"
                expected, actual = dict(expected, TTL=None), dict(actual, TTL=None)
            assert actual == expected, f"seed {seed} op {index} {method}({request})"
    finally:
        for channel in channels:
            channel.close()

"""A 3-member etcdx cluster on loopback, started with etcd's flags: it elects one leader, a write through
any member is read back linearizably from every member, and after kill -9 of the leader the two others
elect a new one and keep every acknowledged write."""

from __future__ import annotations

import socket
import time

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.peer.codec import message_frame
from etcdx.raft import Message, MessageType
from tests.support.procs import etcdx_cluster, start_cluster, stop_cluster


def status(member) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(member.endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=5)


def put(member, key: bytes, value: bytes) -> int:
    with grpc.insecure_channel(member.endpoint) as channel:
        return rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10).header.revision


def get(member, key: bytes, serializable: bool = False) -> bytes | None:
    with grpc.insecure_channel(member.endpoint) as channel:
        request = rpc_pb2.RangeRequest(key=key, serializable=serializable)
        kvs = rpc_pb2_grpc.KVStub(channel).Range(request, timeout=10).kvs
    return kvs[0].value if kvs else None


def leaders(members) -> set[int]:
    return {status(m).leader for m in members}


@pytest.fixture
def cluster(tmp_path):
    members = etcdx_cluster(tmp_path, 3)
    start_cluster(members)
    try:
        yield members
    finally:
        stop_cluster(members)


def test_three_members_agree_on_a_leader_and_replicate_writes(cluster):
    ids = {status(m).header.member_id for m in cluster}
    assert len(ids) == 3
    (leader,) = leaders(cluster)  # one leader, the same for all
    assert leader in ids
    for n, member in enumerate(cluster):  # a write through each member, leader or follower
        put(member, b"k%d" % n, b"v%d" % n)
    for member in cluster:  # linearizable reads on every member see every acknowledged write
        assert [get(member, b"k%d" % n) for n in range(3)] == [b"v0", b"v1", b"v2"]


def test_the_cluster_survives_the_loss_of_its_leader(cluster):
    (leader,) = leaders(cluster)
    by_id = {status(m).header.member_id: m for m in cluster}
    for n in range(20):
        put(cluster[n % 3], b"before/%d" % n, b"x")
    by_id[leader].kill9()
    survivors = [m for i, m in by_id.items() if i != leader]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            new = leaders(survivors)
        except grpc.RpcError:
            new = set()
        if len(new) == 1 and 0 not in new and leader not in new:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no new leader among the survivors: {new}")
    put(survivors[0], b"after", b"y")
    for member in survivors:
        assert get(member, b"after") == b"y"
        assert all(get(member, b"before/%d" % n) == b"x" for n in range(20))


def test_bad_peer_input_is_refused_and_logged_while_the_cluster_serves(cluster):
    """Garbage and a frame from another cluster on a member's peer port: each refused and logged, once; the
    member and the cluster go on serving."""
    target = cluster[1]
    with socket.create_connection(("127.0.0.1", target.peer_port), timeout=5) as garbage:
        garbage.sendall(b"GET /raft HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)
    heartbeat = Message(MessageType.HEARTBEAT, to=status(target).header.member_id, sender=0xBEEF, term=99)
    with socket.create_connection(("127.0.0.1", target.peer_port), timeout=5) as other_cluster:
        other_cluster.sendall(message_frame(0xDEAD, 0xBEEF, heartbeat.to, heartbeat))
        other_cluster.recv(1024)  # the refusal, then the close
    put(target, b"after-garbage", b"ok")
    assert [get(m, b"after-garbage") for m in cluster] == [b"ok"] * 3
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = target.log_tail(400)
        if "failed to decode Raft message" in log and "request cluster ID mismatch" in log:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"refusals not logged:\n{target.log_tail(20)}")

"""Member changes for the campaign, through the Cluster API as an operator runs them: remove a member, stop it
and wipe its data dir, add it back (MemberAdd) and start it empty with --initial-cluster-state existing.

``rejoin(cluster, target, new_identity)``: with ``new_identity`` False the member comes back under its name and
peer URL (a member replaced in place); with True under a new name and a new peer URL (a fresh proxy port), as
a new machine would. Either way it gets a new member ID, which ``target.member_id`` takes, so cuts drawn
afterwards name it. Its client URL stays, so the clients' and watchers' endpoints stay valid.

The Cluster calls go to a running member other than the target and are retried for ``CHANGE_DEADLINE`` while
the cluster has no leader (an earlier fault may still settle). Raises ``ChangeFailed`` with the reason when
the cluster refuses or does not answer.
"""

from __future__ import annotations

import shutil
import time

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.faults.cluster import FaultCluster, Member
from tests.support.procs import free_ports

CHANGE_DEADLINE = 20.0
RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN)


class ChangeFailed(Exception):
    """The cluster refused or did not answer a member change."""


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _set_flag(argv: list[str], name: str, value: str) -> None:
    if name in argv:
        argv[argv.index(name) + 1] = value
    else:
        argv.extend([name, value])


def _cluster_call(cluster: FaultCluster, target: Member, call):
    """``call(ClusterStub)`` on the first running member other than ``target`` that answers."""
    deadline = time.monotonic() + CHANGE_DEADLINE
    last = "no other member runs"
    while time.monotonic() < deadline:
        for member in cluster.members:
            if member is target or not member.running or member.paused:
                continue
            try:
                with grpc.insecure_channel(member.endpoint) as channel:
                    return call(rpc_pb2_grpc.ClusterStub(channel))
            except grpc.RpcError as exc:
                if exc.code() not in RETRIED:
                    raise ChangeFailed(f"{exc.code().name}: {exc.details()}") from None
                last = f"{exc.code().name}: {exc.details()}"
        time.sleep(0.2)
    raise ChangeFailed(f"no answer within {CHANGE_DEADLINE} s ({last})")


def rejoin(cluster: FaultCluster, target: Member, new_identity: bool) -> str:
    """Removes ``target``, wipes it and adds it back as a new member (see the module docstring); returns what
    was done."""
    old_id = target.member_id
    _cluster_call(cluster, target, lambda stub: stub.MemberRemove(rpc_pb2.MemberRemoveRequest(ID=old_id), timeout=5))
    target.process.stop()
    shutil.rmtree(target.process.data_dir, ignore_errors=True)
    argv = target.process.argv
    peer_url = _flag(argv, "--initial-advertise-peer-urls")
    if new_identity:
        (port,) = free_ports(1)
        cluster.proxies.add_route(port, target.process.peer_port)
        peer_url = f"http://127.0.0.1:{port}"
        target.name = f"{target.name.split('-')[0]}-{port}"
    added = _cluster_call(
        cluster, target, lambda stub: stub.MemberAdd(rpc_pb2.MemberAddRequest(peerURLs=[peer_url]), timeout=5)
    )
    initial = [f"{m.name or target.name}={url}" for m in added.members for url in m.peerURLs]
    _set_flag(argv, "--name", target.name)
    _set_flag(argv, "--initial-advertise-peer-urls", peer_url)
    _set_flag(argv, "--initial-cluster", ",".join(initial))
    _set_flag(argv, "--initial-cluster-state", "existing")
    target.member_id = added.member.ID
    target.process.launch()
    how = "rejoined as a new member" if new_identity else "added back"
    return f"{target.name} ({old_id:x}) removed, wiped and {how} as {added.member.ID:x} at {peer_url}"

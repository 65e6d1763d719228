"""What a learner member serves, against real etcd 3.5.1 as the oracle: a one-voter cluster of each (etcd, then
etcdx) gets a learner added (`etcdctl member add --learner`) and started with the ETCD_* variables that printed;
once the learner has caught up, the same etcdctl 3.5.1 commands, raw gRPC calls and /v3 JSON gateway requests go
to the learner's endpoint, and everything they show must be identical; the voter serves the same gRPC calls.
Last, the learner is promoted and then takes a put, in both.

etcd's rule, as this test observes it: a learner serves Maintenance Status, a serializable Range and the
Maintenance Snapshot stream; it refuses every other call, unary or stream (KV, Watch, Lease, Cluster, Auth, the
other Maintenance calls, Lock, Election and the gRPC health check), with Unavailable "etcdserver: rpc not
supported for learner". etcdctl retries the refused calls it deems safe to retry until its --command-timeout
(1 s here), so those print "context deadline exceeded"; `etcdctl watch` retries its stream for ever, so Watch is
checked over gRPC only.

Normalised, and only these: etcdctl's JSON log lines on stderr (timestamps, retry attempt counts, pointers) are
dropped, the lines a user reads ("Error: ...") kept; in `endpoint status` the member id (etcd derives an added
member's id from the clock) and the DB size (bbolt and LMDB pages differ); `lease keep-alive --once` prints
"Error: EOF" or etcd's refusal by a race in etcdctl (its Send may find the stream already ended, with etcd too),
so EOF reads as the refusal there; gateway bodies of calls that succeed are not compared (ids and sizes), only
their HTTP status.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import (
    ETCD,
    ETCDCTL,
    ServerProcess,
    cluster_ports,
    etcd_cluster,
    etcdx_cluster,
    free_ports,
    start_cluster,
    stop_cluster,
)

COMMANDS = [
    ["put", "k", "v2"],
    ["get", "k"],
    ["get", "k", "--consistency=s"],
    ["txn"],  # a put on success, no compares (read from stdin)
    ["del", "k"],
    ["compaction", "1"],
    ["lease", "grant", "10"],
    ["lease", "keep-alive", "--once", "123"],
    ["lease", "list"],
    ["member", "list"],
    ["endpoint", "status"],
    ["endpoint", "health"],
    ["endpoint", "hashkv"],
    ["snapshot", "save", "snap.db"],
    ["alarm", "list"],
    ["defrag"],
    ["auth", "status"],
    ["user", "list"],
    ["lock", "L"],
    ["elect", "E", "proposal"],
]
GATEWAY = [
    ("/v3/kv/range", {"key": "aw=="}),
    ("/v3/kv/range", {"key": "aw==", "serializable": True}),
    ("/v3/kv/put", {"key": "aw==", "value": "dg=="}),
    ("/v3/maintenance/status", {}),
    ("/v3/cluster/member/list", {}),
]
RAW_UNARY = [  # methods a user's own gRPC client may call; empty requests (refused before they are read)
    "/grpc.health.v1.Health/Check",
    "/v3lockpb.Lock/Lock",
    "/v3electionpb.Election/Leader",
    "/etcdserverpb.Maintenance/Hash",
    "/etcdserverpb.Lease/LeaseTimeToLive",
    "/etcdserverpb.Maintenance/Downgrade",
]
READY_TIMEOUT = 30.0
STDIN = {"txn": "\nput k v3\n\n\n"}
STILL_RUNNING = 10
REFUSED = "etcdserver: rpc not supported for learner"


def etcdctl(endpoint: str, args: list[str], cwd: str) -> subprocess.CompletedProcess:
    """etcdctl 3.5.1's outcome; one still running after STILL_RUNNING seconds (say, `lock` holding the lock it
    got) is killed and shows as such."""
    argv = [ETCDCTL, "--endpoints", endpoint, "--command-timeout=1s", *args]
    env = {**os.environ, "ETCDCTL_API": "3"}
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=STILL_RUNNING, cwd=cwd, input=STDIN.get(args[0], ""), env=env
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return subprocess.CompletedProcess(argv, f"still running after {STILL_RUNNING} s", out, "")


def shown(args: list[str], done: subprocess.CompletedProcess) -> str:
    """What a user reads of one command, normalised as the module docstring says."""
    out = done.stdout
    if args[:2] == ["endpoint", "status"]:
        out = re.sub(r"^([^,]+), [0-9a-f]+, ", r"\1, <id>, ", out, flags=re.M)
        out = re.sub(r", [\d.]+ [kMG]?B, ", ", <db size>, ", out)
    err = "".join(line for line in done.stderr.splitlines(True) if not line.startswith("{"))
    if args[:2] == ["lease", "keep-alive"]:  # its Send may find the refused stream ended before Recv reads why
        err = err.replace("Error: EOF\n", f"Error: {REFUSED}\n")
    return f"$ etcdctl {' '.join(args)} -> {done.returncode}\n{out}{err}"


def grpc_outcome(call) -> str:
    try:
        call()
        return "OK"
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"


def grpc_calls(endpoint: str, raw_calls: bool = True) -> dict[str, str]:
    """Each call's outcome, "OK" or the gRPC code and message; ``raw_calls``: with the empty-request ones."""
    with grpc.insecure_channel(endpoint) as channel:
        kv, maintenance = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.MaintenanceStub(channel)
        watch, lease = rpc_pb2_grpc.WatchStub(channel), rpc_pb2_grpc.LeaseStub(channel)
        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"k"))
        calls = {
            "Range": lambda: kv.Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5),
            "Range serializable": lambda: kv.Range(rpc_pb2.RangeRequest(key=b"k", serializable=True), timeout=5),
            "Status": lambda: maintenance.Status(rpc_pb2.StatusRequest(), timeout=5),
            "Snapshot": lambda: list(maintenance.Snapshot(rpc_pb2.SnapshotRequest(), timeout=10)),
            "Watch": lambda: next(watch.Watch(iter([create]), timeout=5)),
            "LeaseKeepAlive": lambda: next(
                lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=1)]), timeout=5)
            ),
            "MemberList": lambda: rpc_pb2_grpc.ClusterStub(channel).MemberList(rpc_pb2.MemberListRequest(), timeout=5),
            "AuthStatus": lambda: rpc_pb2_grpc.AuthStub(channel).AuthStatus(rpc_pb2.AuthStatusRequest(), timeout=5),
        }
        for path in RAW_UNARY if raw_calls else ():
            raw = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            calls[path] = lambda raw=raw: raw(b"", timeout=5)
        if raw_calls:
            observe = channel.unary_stream("/v3electionpb.Election/Observe")
            calls["/v3electionpb.Election/Observe"] = lambda: next(observe(b"", timeout=5))
        return {name: grpc_outcome(call) for name, call in calls.items()}


def gateway_calls(client_url: str) -> list[str]:
    results = []
    for path, body in GATEWAY:
        request = urllib.request.Request(client_url + path, data=json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                results.append(f"{path} {json.dumps(body)} -> {response.status}")
        except urllib.error.HTTPError as exc:
            results.append(f"{path} {json.dumps(body)} -> {exc.code} {exc.read().decode()}")
    return results


def wait_caught_up(voter: ServerProcess, learner: ServerProcess) -> None:
    """Until the learner serves a serializable read of what the voter holds (it has applied the voter's log)."""
    deadline = time.monotonic() + READY_TIMEOUT
    with grpc.insecure_channel(voter.endpoint) as v, grpc.insecure_channel(learner.endpoint) as lc:
        want = rpc_pb2_grpc.KVStub(v).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5).kvs
        while True:
            try:
                got = rpc_pb2_grpc.KVStub(lc).Range(rpc_pb2.RangeRequest(key=b"k", serializable=True), timeout=1).kvs
                if got == want:
                    return
            except grpc.RpcError:
                pass
            assert learner.proc.poll() is None, learner.log_tail()
            assert time.monotonic() < deadline, f"the learner did not catch up:\n{learner.log_tail()}"
            time.sleep(0.1)


def run(kind: str, tmp_path, ports: list[int]) -> dict:
    """Starts the voter, adds and starts the learner, runs every probe on the learner, promotes it, and stops."""
    members = start_cluster((etcd_cluster if kind == "etcd" else etcdx_cluster)(tmp_path, 1, ports=ports[:2]))
    voter, learner = members[0], None
    cwd = str(tmp_path)
    try:
        assert etcdctl(voter.endpoint, ["put", "k", "v"], cwd).returncode == 0
        client_port, peer_port = ports[2:]
        add = etcdctl(
            voter.endpoint, ["member", "add", "l1", "--learner", f"--peer-urls=http://127.0.0.1:{peer_port}"], cwd
        )
        assert add.returncode == 0, add.stderr
        learner_id = re.match(r"Member +(\w+) added", add.stdout).group(1)
        env = {k: v.strip('"') for k, v in re.findall(r"^(ETCD_\w+)=(.*)$", add.stdout, re.M)}
        client = f"http://127.0.0.1:{client_port}"
        command = [ETCD] if kind == "etcd" else [sys.executable, "-m", "etcdx"]
        argv = [*command, "--data-dir", str(tmp_path / "l1.data"), "--listen-client-urls", client]
        argv += ["--advertise-client-urls", client, "--listen-peer-urls", f"http://127.0.0.1:{peer_port}"]
        learner = ServerProcess(argv, str(tmp_path / "l1.data"), client_port, peer_port, str(tmp_path / "l1.log"), env)
        learner.launch()
        wait_caught_up(voter, learner)
        with ThreadPoolExecutor(max_workers=8) as pool:
            commands = list(pool.map(lambda args: shown(args, etcdctl(learner.endpoint, args, cwd)), COMMANDS))
        outcome = {"etcdctl": commands, "grpc": grpc_calls(learner.endpoint), "gateway": gateway_calls(client)}
        outcome["voter"] = grpc_calls(voter.endpoint, raw_calls=False)
        deadline = time.monotonic() + READY_TIMEOUT
        while (promote := etcdctl(voter.endpoint, ["member", "promote", learner_id], cwd)).returncode != 0:
            assert time.monotonic() < deadline, f"the learner was never promoted: {promote.stderr}"
            time.sleep(0.2)
        deadline = time.monotonic() + READY_TIMEOUT
        while (put := etcdctl(learner.endpoint, ["put", "after", "promotion"], cwd)).returncode != 0:
            assert time.monotonic() < deadline, put.stderr  # the promotion is applied on the learner too
            time.sleep(0.2)
        outcome["put once promoted"] = shown(["put", "after", "promotion"], put)
        return outcome
    finally:
        if learner is not None:
            learner.stop()
        stop_cluster(members)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    ports = [*cluster_ports(1), *free_ports(2)]  # the same URLs for both: the same voter and cluster ids
    return {kind: run(kind, tmp_path_factory.mktemp(kind), ports) for kind in ("etcd", "etcdx")}


@pytest.mark.parametrize("part", ["etcdctl", "grpc", "gateway", "voter", "put once promoted"])
def test_a_learner_serves_and_refuses_what_etcds_does(runs, part):
    assert runs["etcdx"][part] == runs["etcd"][part]


def test_the_oracle_refuses_all_but_status_serializable_range_and_snapshot(runs):
    """The rule the comparisons above hold etcdx to, as etcd showed it (a guard against a vacuous oracle)."""
    served = {name for name, outcome in runs["etcd"]["grpc"].items() if outcome == "OK"}
    assert served == {"Range serializable", "Status", "Snapshot"}
    refused = {outcome for name, outcome in runs["etcd"]["grpc"].items() if name not in served}
    assert refused == {f"UNAVAILABLE: {REFUSED}"}
    assert set(runs["etcd"]["voter"].values()) == {"OK"}  # the voter refuses none of them

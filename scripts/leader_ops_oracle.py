"""Leader operations against a real 3-member cluster of etcd 3.5.1 or etcdx, printed so that the two runs can be
compared line by line (member ids become their roles; times are rounded): what tests/integration/
test_cluster_leader_ops.py expects of etcdx is what this prints for etcd.

    python scripts/leader_ops_oracle.py --server etcd  > etcd.txt
    python scripts/leader_ops_oracle.py --server etcdx > etcdx.txt
    diff etcd.txt etcdx.txt

Scenarios: `etcdctl move-leader` (to a follower, to the leader itself, to an unknown id, through an endpoint
that is not the leader); lease time-to-live and keep-alive of an unknown lease through a follower; the leader
paused (SIGSTOP) with a linearizable Range and a Put on each follower in flight; two members killed, then a
Put, a linearizable and a serializable Range on the survivor. About 40 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from tests.support.procs import ETCD, ETCDCTL, ServerProcess, etcdx_cluster, free_ports  # noqa: E402


def etcd_cluster(tmp: Path) -> list[ServerProcess]:
    ports = free_ports(6)
    initial = ",".join(f"m{n}=http://127.0.0.1:{ports[2 * n + 1]}" for n in range(3))
    members = []
    for n in range(3):
        client, peer = f"http://127.0.0.1:{ports[2 * n]}", f"http://127.0.0.1:{ports[2 * n + 1]}"
        data_dir = str(tmp / f"m{n}.etcd")
        argv = [ETCD, "--name", f"m{n}", "--data-dir", data_dir, "--listen-client-urls", client,
                "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls",
                peer, "--initial-cluster", initial]  # fmt: skip
        members.append(ServerProcess(argv, data_dir, ports[2 * n], ports[2 * n + 1], str(tmp / f"m{n}.log")))
    return members


def status(member) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(member.endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=5)


def outcome(member, method: str, request) -> str:
    started = time.monotonic()
    try:
        with grpc.insecure_channel(member.endpoint) as channel:
            getattr(rpc_pb2_grpc.KVStub(channel), method)(request, timeout=20)
        result = "OK"
    except grpc.RpcError as exc:
        result = f"{exc.code().name} {exc.details()!r}"
    return f"{result} after ~{round(time.monotonic() - started)} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("etcd", "etcdx"), required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        members = etcd_cluster(Path(tmp)) if args.server == "etcd" else etcdx_cluster(Path(tmp), 3)
        for member in members:
            member.launch()
        try:
            for member in members:
                member.wait_ready()
            run(members)
        finally:
            for member in members:
                if member.proc.poll() is None:
                    os.kill(member.pid, signal.SIGCONT)
                member.stop()
    return 0


def run(members) -> None:
    time.sleep(2)
    ids = {status(m).header.member_id: m for m in members}
    leader_id = status(members[0]).leader
    roles = {leader_id: "<leader>"}
    roles.update({i: f"<f{n}>" for n, i in enumerate(i for i in sorted(ids) if i != leader_id)})
    by_role = {role: ids[i] for i, role in roles.items()}

    def show(text: str) -> str:
        for member_id, role in roles.items():
            text = text.replace(f"{member_id:x}", role).replace(str(member_id), role)
        for member in members:
            text = text.replace(member.endpoint, "<endpoint>")
        return text

    def etcdctl(*argv: str, endpoints: str) -> None:
        done = subprocess.run([ETCDCTL, "--endpoints", endpoints, *argv], capture_output=True, text=True, timeout=30)
        error = done.stderr.strip().splitlines()[-1:] if done.returncode else []
        print(show(f"$ etcdctl {' '.join(argv)} -> rc {done.returncode} {done.stdout.strip()!r} {error}"))

    everyone = ",".join(m.endpoint for m in members)
    etcdctl("move-leader", f"{[i for i in roles if roles[i] == '<f0>'][0]:x}", endpoints=everyone)
    etcdctl("move-leader", f"{[i for i in roles if roles[i] == '<f0>'][0]:x}", endpoints=everyone)
    etcdctl("move-leader", "1234", endpoints=everyone)
    etcdctl("move-leader", f"{leader_id:x}", endpoints=by_role["<leader>"].endpoint)  # no longer the leader
    etcdctl("move-leader", f"{leader_id:x}", endpoints=everyone)  # back
    follower = by_role["<f1>"]
    etcdctl("lease", "timetolive", "1234", endpoints=follower.endpoint)
    etcdctl("lease", "keep-alive", "--once", "1234", endpoints=follower.endpoint)

    leader = by_role["<leader>"]
    os.kill(leader.pid, signal.SIGSTOP)
    time.sleep(0.2)
    results: dict[str, str] = {}
    calls = {
        "Range on <f0>": lambda: outcome(by_role["<f0>"], "Range", rpc_pb2.RangeRequest(key=b"k")),
        "Put on <f0>": lambda: outcome(by_role["<f0>"], "Put", rpc_pb2.PutRequest(key=b"a", value=b"1")),
        "Put on <f1>": lambda: outcome(by_role["<f1>"], "Put", rpc_pb2.PutRequest(key=b"b", value=b"1")),
    }
    threads = [threading.Thread(target=lambda k=k, f=f: results.__setitem__(k, f())) for k, f in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    new_leader = roles[status(by_role["<f0>"]).leader]
    print(f"leader paused; new leader {new_leader}")
    for name in calls:
        print(f"  {name}: {results[name]}")
    leader.kill9()
    survivor, other = by_role[new_leader], next(by_role[r] for r in ("<f0>", "<f1>") if r != new_leader)
    other.kill9()
    time.sleep(2.5)
    print("two members killed; on the survivor:")
    print(f"  Put: {outcome(survivor, 'Put', rpc_pb2.PutRequest(key=b'c', value=b'1'))}")
    print(f"  Range: {outcome(survivor, 'Range', rpc_pb2.RangeRequest(key=b'k'))}")
    print(f"  serializable Range: {outcome(survivor, 'Range', rpc_pb2.RangeRequest(key=b'k', serializable=True))}")


if __name__ == "__main__":
    sys.exit(main())

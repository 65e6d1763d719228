"""systemd's Type=notify, as the seed runs etcd: READY=1 on $NOTIFY_SOCKET only once the member serves, with the
name and data dir an EnvironmentFile's ETCD_* variables give (no flags on the command line, as the seed's
ExecStart=/opt/etcd/etcd)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import free_ports

READY_WAIT = 60.0


def _environment(tmp_path, notify_socket: str) -> tuple[dict[str, str], int]:
    client, peer = free_ports(2)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify_socket,
        # The seed's EnvironmentFile (/opt/etcd/config/etcd.conf) ...
        "ETCD_NAME": "svc-node",
        "ETCD_DATA_DIR": str(tmp_path / "var-lib-etcd"),
        # ... and ports a test can use (the seed's defaults, 2379 and 2380, may be taken here).
        "ETCD_LISTEN_CLIENT_URLS": f"http://127.0.0.1:{client}",
        "ETCD_ADVERTISE_CLIENT_URLS": f"http://127.0.0.1:{client}",
        "ETCD_LISTEN_PEER_URLS": f"http://127.0.0.1:{peer}",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"http://127.0.0.1:{peer}",
        "ETCD_INITIAL_CLUSTER": f"svc-node=http://127.0.0.1:{peer}",
    }
    return env, client


def _start(env: dict[str, str], log_path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "etcdx"], env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _serves(client_port: int) -> bool:
    """A write and a linearizable read answer, and /health says true: what systemd's READY promises."""
    with grpc.insecure_channel(f"127.0.0.1:{client_port}") as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Put(rpc_pb2.PutRequest(key=b"ready", value=b"1"), timeout=5)
        got = kv.Range(rpc_pb2.RangeRequest(key=b"ready"), timeout=5)
    with urllib.request.urlopen(f"http://127.0.0.1:{client_port}/health", timeout=5) as resp:
        health = resp.read()
    return got.kvs[0].value == b"1" and b'"health":"true"' in health


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_is_sent_once_the_member_serves(tmp_path, abstract):
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"etcdx-notify-test-{os.getpid()}-{id(tmp_path)}"
        receiver.bind("\0" + name)
        notify_socket = "@" + name
    else:
        notify_socket = str(tmp_path / "notify.sock")
        receiver.bind(notify_socket)
    receiver.settimeout(READY_WAIT)
    env, client_port = _environment(tmp_path, notify_socket)
    proc = _start(env, tmp_path / "etcdx.log")
    try:
        message = receiver.recv(4096)
        # Checked at once: a member that said READY=1 before serving would fail here.
        assert message == b"READY=1"
        assert _serves(client_port)
        with grpc.insecure_channel(f"127.0.0.1:{client_port}") as channel:
            members = rpc_pb2_grpc.ClusterStub(channel).MemberList(rpc_pb2.MemberListRequest(), timeout=5).members
        assert [m.name for m in members] == ["svc-node"]
        assert os.path.isdir(tmp_path / "var-lib-etcd" / "member")
    finally:
        _stop(proc)
        receiver.close()
    log = (tmp_path / "etcdx.log").read_text()
    assert "successfully notified init daemon" in log


def test_a_member_that_cannot_start_never_says_ready(tmp_path):
    """The data dir is held by a running member: the second one refuses to start and must not tell systemd it is
    ready (systemd would then route to a dead service instead of restarting it)."""
    first_socket, second_socket = str(tmp_path / "first.sock"), str(tmp_path / "second.sock")
    first_receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    first_receiver.bind(first_socket)
    first_receiver.settimeout(READY_WAIT)
    second_receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    second_receiver.bind(second_socket)
    env, _ = _environment(tmp_path, first_socket)
    first = _start(env, tmp_path / "first.log")
    second = None
    try:
        assert first_receiver.recv(4096) == b"READY=1"
        other_env, _ = _environment(tmp_path, second_socket)  # same data dir, other ports
        second = _start(other_env, tmp_path / "second.log")
        assert second.wait(timeout=60) != 0
        second_receiver.setblocking(False)
        with pytest.raises(BlockingIOError):
            second_receiver.recv(4096)
    finally:
        if second is not None and second.poll() is None:
            _stop(second)
        _stop(first)
        first_receiver.close()
        second_receiver.close()

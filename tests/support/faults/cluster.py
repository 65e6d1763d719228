"""A 3-member (or larger) etcdx cluster for the fault campaign: real processes whose peers talk through
PeerProxies, one member ("the slow-disk member") with its data dir on LazyFS in slow-fsync mode.

Each member listens for peers on its own port and advertises, in --initial-advertise-peer-urls and in
every member's --initial-cluster, the port of its proxy. Member IDs are read from each member's Status.
``stop`` ends every process it started (by PID), then the proxies and the LazyFS mount.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.faults.proxy import PeerProxies
from tests.support.lazyfs import LazyFSMount
from tests.support.procs import ServerProcess, free_ports

STATUS_TIMEOUT = 1.0


def status(endpoint: str, timeout: float = STATUS_TIMEOUT) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=timeout)


@dataclass
class Member:
    name: str
    process: ServerProcess
    member_id: int = 0
    paused: bool = False

    @property
    def endpoint(self) -> str:
        return self.process.endpoint

    @property
    def running(self) -> bool:
        proc = self.process.proc
        return proc is not None and proc.poll() is None


@dataclass
class FaultCluster:
    members: list[Member]
    proxies: PeerProxies
    lazyfs: LazyFSMount | None = None
    fsync_delay_file: str | None = None
    slow_disk_member: str | None = None

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def by_id(self, member_id: int) -> Member:
        return next(m for m in self.members if m.member_id == member_id)

    def start(self) -> FaultCluster:
        self.proxies.start()
        if self.lazyfs is not None:
            self.lazyfs.start()
        for member in self.members:
            member.process.launch()
        for member in self.members:
            member.process.wait_ready()
            member.member_id = status(member.endpoint).header.member_id
        return self

    def stop(self) -> None:
        for member in self.members:
            if member.paused and member.running:
                member.process.proc.send_signal(signal.SIGCONT)
                member.paused = False
            member.process.stop()
        self.proxies.stop()
        if self.lazyfs is not None:
            self.lazyfs.power_cut()

    def set_fsync_delay(self, seconds: float) -> None:
        with open(self.fsync_delay_file, "w") as f:
            f.write(f"{seconds}\n")

    def leader(self) -> Member | None:
        """The member every running, unpaused member names as leader, if they agree and it is one of them."""
        seen = set()
        for member in self.members:
            if not member.running or member.paused:
                continue
            try:
                seen.add(status(member.endpoint).leader)
            except grpc.RpcError:
                return None
        if len(seen) != 1 or 0 in seen:
            return None
        (leader_id,) = seen
        leader = self.by_id(leader_id)
        return leader if leader.running and not leader.paused else None

    def healthy(self) -> bool:
        """Every member runs, agrees on one leader, and answers a linearizable Range."""
        if any(not m.running or m.paused for m in self.members) or self.leader() is None:
            return False
        for member in self.members:
            try:
                with grpc.insecure_channel(member.endpoint) as channel:
                    rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"health"), timeout=1)
            except grpc.RpcError:
                return False
        return True

    def describe(self) -> str:
        """Each member's state as its Status shows it (leader, term, index), or why it does not answer."""
        parts = []
        for member in self.members:
            if not member.running:
                parts.append(f"{member.name}: not running")
                continue
            try:
                s = status(member.endpoint)
                parts.append(f"{member.name}: leader {s.leader:x} term {s.raftTerm} index {s.raftIndex}")
            except grpc.RpcError as exc:
                parts.append(f"{member.name}: Status {exc.code().name}")
            try:
                with grpc.insecure_channel(member.endpoint) as channel:
                    rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"health"), timeout=1)
            except grpc.RpcError as exc:
                parts[-1] += f", linearizable Range {exc.code().name}"
        return "; ".join(parts)

    def wait_healthy(self, deadline: float) -> float | None:
        """Seconds until ``healthy`` holds, or None if it did not within ``deadline`` seconds."""
        started = time.monotonic()
        while time.monotonic() - started < deadline:
            if self.healthy():
                return time.monotonic() - started
            time.sleep(0.05)
        return None


def fault_cluster(
    directory: Path,
    size: int = 3,
    command: tuple[str, ...] = ("-m", "etcdx"),
    slow_disk: bool = True,
    extra_args: tuple[str, ...] = (),
) -> FaultCluster:
    """A cluster, not started. Member m{size-1} keeps its data on LazyFS when ``slow_disk``."""
    os.makedirs(directory, exist_ok=True)
    ports = free_ports(4 * size)
    names = [f"m{n}" for n in range(size)]
    client = [ports[4 * n] for n in range(size)]
    listen_peer = [ports[4 * n + 1] for n in range(size)]
    advertised = [ports[4 * n + 2] for n in range(size)]
    initial = ",".join(f"{name}=http://127.0.0.1:{advertised[n]}" for n, name in enumerate(names))
    lazyfs = delay_file = slow_name = None
    if slow_disk:
        slow_name = names[-1]
        delay_file = str(directory / "fsync-delay")
        Path(delay_file).write_text("0\n")
        lazyfs = LazyFSMount(
            str(directory / "lazyfs-store"), str(directory / "lazyfs-mount"), fsync_delay_file=delay_file
        )
    members = []
    for n, name in enumerate(names):
        base = Path(lazyfs.mountpoint) if name == slow_name else directory
        data_dir = str(base / f"{name}.etcdx")
        argv = [
            sys.executable,
            *command,
            "--name",
            name,
            "--data-dir",
            data_dir,
            "--listen-client-urls",
            f"http://127.0.0.1:{client[n]}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{client[n]}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{listen_peer[n]}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{advertised[n]}",
            "--initial-cluster",
            initial,
            *extra_args,
        ]
        log = str(directory / f"{name}.log")
        members.append(Member(name, ServerProcess(argv, data_dir, client[n], listen_peer[n], log)))
    proxies = PeerProxies({advertised[n]: listen_peer[n] for n in range(size)})
    return FaultCluster(members, proxies, lazyfs, delay_file, slow_name)

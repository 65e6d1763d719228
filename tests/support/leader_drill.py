"""The leader drill: a real etcdx cluster under client load while its leader is killed (kill -9) over and over;
each killed leader is restarted once a new leader is elected. The clients' history (all members' endpoints,
with failover) is judged by the linearizability checker.

Used by tests/integration/test_leader_drill.py (a short drill in CI) and scripts/leader_drill.py (a long one).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.faults.traffic import KVClient, merged_history, start_threads
from tests.support.lincheck import check
from tests.support.procs import ServerProcess, etcdx_cluster

ELECTION_DEADLINE = 20.0


@dataclass
class DrillReport:
    kills: int = 0
    election_seconds: list[float] = field(default_factory=list)
    operations: int = 0
    unknown_writes: int = 0
    client_errors: int = 0
    verdict: str = ""
    report: str = ""

    def summary(self) -> str:
        times = self.election_seconds
        election = (
            f"new leader after median {statistics.median(times):.2f} s, max {max(times):.2f} s" if times else "no kill"
        )
        return (
            f"{self.kills} leader kills; {election}; {self.operations} operations "
            f"({self.unknown_writes} writes of unknown outcome, {self.client_errors} client errors); "
            f"history: {self.verdict}"
        )


def _status(member: ServerProcess) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(member.endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=1)


def _leader(members: list[ServerProcess]) -> tuple[ServerProcess, int] | None:
    """The member the live members agree leads (by their Status), or None."""
    ids: dict[int, ServerProcess] = {}
    seen = set()
    for member in members:
        if member.proc is None or member.proc.poll() is not None:
            continue
        try:
            status = _status(member)
        except grpc.RpcError:
            continue
        ids[status.header.member_id] = member
        seen.add(status.leader)
    if len(seen) != 1:
        return None
    (leader,) = seen
    return (ids[leader], leader) if leader in ids else None


def drill(
    tmp_path,
    *,
    size: int = 3,
    seconds: float,
    kill_every: float,
    clients: int = 4,
    seed: int = 0,
    command: tuple[str, ...] = ("-m", "etcdx"),
) -> DrillReport:
    members = etcdx_cluster(tmp_path, size, command=command)
    for member in members:
        member.launch()
    report = DrillReport()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    recorders: list[KVClient] = []
    try:
        for member in members:
            member.wait_ready()
        endpoints = [m.endpoint for m in members]
        keys = [b"drill/%d" % k for k in range(4)]
        recorders = [KVClient(n, endpoints, keys, seed * 1000 + n) for n in range(clients)]
        threads = start_threads(recorders, stop)
        end = time.monotonic() + seconds
        while time.monotonic() + kill_every < end:
            stop.wait(kill_every)
            found = _leader(members)
            if found is None:
                continue
            victim, victim_id = found
            victim.kill9()
            killed_at = time.monotonic()
            report.kills += 1
            while True:
                found = _leader(members)
                if found is not None and found[1] != victim_id:
                    report.election_seconds.append(time.monotonic() - killed_at)
                    break
                if time.monotonic() - killed_at > ELECTION_DEADLINE:
                    raise AssertionError(f"no new leader {ELECTION_DEADLINE} s after killing {victim_id:x}")
                time.sleep(0.05)
            victim.start()  # rejoins the cluster, which has a leader: it serves once caught up
        stop.wait(max(0.0, end - time.monotonic()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for member in members:
            member.stop()
    history = merged_history(recorders)
    result = check(history)
    report.operations = len(history)
    report.unknown_writes = sum(1 for op in history if not op.known)
    report.client_errors = sum(c.errors for c in recorders)
    report.verdict, report.report = result.verdict, result.report
    return report

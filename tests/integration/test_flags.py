"""Issue 13's flags on a real etcdx process: each group of flags starts one member, its flags given through one
of etcd's three sources (command line, ETCD_* variables, YAML --config-file; which group gets which comes from a
seeded rotation, ETCDX_FLAGS_SEED), and the test checks what the flags do. tests/unit/test_config_flags.py
parses every flag from all three sources."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest
import yaml

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import ServerProcess, current_leader, etcdx_cluster, etcdx_process, start_cluster, stop_cluster

SOURCES = ("argv", "env", "yaml")
SEED = int(os.environ.get("ETCDX_FLAGS_SEED", "13"))
_rotation = random.Random(SEED).sample(SOURCES, 3)
GROUP_SOURCE = {"compaction": _rotation[0], "revision": _rotation[1], "raft": _rotation[2], "lease": _rotation[0]}


def _member(tmp_path, group: str, flags: dict[str, str], env: dict[str, str] | None = None) -> ServerProcess:
    """An etcdx member (not started) with ``flags`` given through the group's source."""
    proc = etcdx_process(tmp_path, name=group, env=env)
    source = GROUP_SOURCE[group]
    if source == "argv":
        proc.argv += [f"--{name}={value}" for name, value in flags.items()]
    elif source == "env":
        proc.env.update({"ETCD_" + name.upper().replace("-", "_"): value for name, value in flags.items()})
    else:  # only the file counts once --config-file is given: the cluster flags go in it too
        head, cluster = proc.argv[:3], proc.argv[3:]
        document = {cluster[i].lstrip("-"): cluster[i + 1] for i in range(0, len(cluster), 2)}
        document.update({name: yaml.safe_load(value) for name, value in flags.items()})
        path = tmp_path / f"{group}.yaml"
        path.write_text(yaml.safe_dump(document))
        proc.argv = [*head, "--config-file", str(path)]
    return proc


def _log(proc: ServerProcess, message: str) -> list[dict]:
    """The JSON log lines of ``proc`` whose msg is ``message``."""
    found = []
    with open(proc.log_path, errors="replace") as f:
        for line in f:
            if line.startswith("{") and (entry := json.loads(line)).get("msg") == message:
                found.append(entry)
    return found


def _put(endpoint: str, count: int) -> int:
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for n in range(count):
            revision = kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v%d" % n), timeout=10).header.revision
    return revision


def _readable(endpoint: str, revision: int) -> bool:
    """Whether a Range at ``revision`` answers (False: compacted)."""
    with grpc.insecure_channel(endpoint) as channel:
        try:
            rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"k", revision=revision), timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.OUT_OF_RANGE, exc
            return False
    return True


def _wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


class _Syscalls:
    """strace attached to every thread of a running process, counting its fdatasync calls."""

    def __init__(self, pid: int, path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-e", "trace=fdatasync", "-o", str(path), "-p", str(pid)],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # attached

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)  # detaches
        self.proc.wait(timeout=10)
        return sum(1 for line in self.path.read_text().splitlines() if "fdatasync(" in line)


def test_periodic_auto_compaction_in_batches_with_slow_apply_warnings(tmp_path):
    flags = {
        "auto-compaction-mode": "periodic",
        "auto-compaction-retention": "2s",
        "experimental-compaction-batch-limit": "2",
        "experimental-warning-apply-duration": "1us",
    }
    with _member(tmp_path, "compaction", flags).start() as proc:
        fsyncs = _Syscalls(proc.pid, tmp_path / "strace-compaction.txt")
        newest = _put(proc.endpoint, 10)  # revisions 2..11
        assert fsyncs.stop() > 0  # the baseline for --unsafe-no-fsync below: every write is fdatasync'ed
        assert _readable(proc.endpoint, 2)
        # Compacted to the revision seen 2 s before: the puts' revisions go, the newest stays readable.
        assert _wait_for(lambda: not _readable(proc.endpoint, newest - 1))
        assert _readable(proc.endpoint, newest)
        assert _log(proc, "starting auto periodic compaction")
        assert _log(proc, "completed auto periodic compaction")
        # 9 rows at 2 a batch: the compaction's own apply, then at least 4 more committed batches.
        assert _wait_for(lambda: any(e["batches"] >= 5 for e in _log(proc, "finished scheduled compaction")))
        slow = _log(proc, "apply request took too long")
        assert any(entry["request"] == "put" for entry in slow)
        assert {entry["expected_duration"] for entry in slow} == {"0.001ms"}


def test_revision_auto_compaction_without_fsync_on_reused_ports(tmp_path):
    flags = {
        "auto-compaction-mode": "revision",
        "auto-compaction-retention": "5",
        "unsafe-no-fsync": "true",
        "socket-reuse-port": "true",
        "socket-reuse-address": "true",
    }
    # etcd compacts every 5 minutes in revision mode; the test-only knob makes it every half second.
    member = _member(tmp_path, "revision", flags, env={"ETCDX_TEST_REVISION_COMPACTION_INTERVAL": "0.5"})
    with member.start() as proc:
        fsyncs = _Syscalls(proc.pid, tmp_path / "strace-revision.txt")
        newest = _put(proc.endpoint, 10)
        assert fsyncs.stop() == 0
        assert _log(
            proc,
            "--unsafe-no-fsync: the WAL and the backend are never fsynced; a crash or power loss can "
            "lose acknowledged writes and leave the data dir inconsistent (for tests only)",
        )
        # current - retention stays readable, the revision before it is compacted.
        assert _wait_for(lambda: not _readable(proc.endpoint, newest - 6))
        assert _readable(proc.endpoint, newest - 5)
        assert newest - 5 in [entry["revision"] for entry in _log(proc, "completed auto revision compaction")]
        # SO_REUSEPORT: another socket that sets it binds the member's client and peer ports.
        for port in (proc.client_port, proc.peer_port):
            other = socket.socket()
            try:
                other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                other.bind(("127.0.0.1", port))
            finally:
                other.close()


def test_raft_options_memory_lock_and_bootstrap_defrag(tmp_path):
    flags = {
        "pre-vote": "false",
        "initial-election-tick-advance": "false",
        "election-timeout": "2000",
        "experimental-bootstrap-defrag-threshold-megabytes": "1",
        "v2-deprecation": "write-only",
    }
    if os.geteuid() == 0:  # mlockall needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK
        flags["experimental-memory-mlock"] = "true"
    proc = _member(tmp_path, "raft", flags).start()
    try:
        started = _log(proc, "server started")[-1]
        assert (started["pre_vote"], started["initial_election_tick_advance"]) == (False, False)
        # Without the tick advance a single member waits a whole election timeout (2 s) before it elects itself.
        elected = _log(proc, "raft leader changed")[0]
        assert _seconds(elected["ts"]) - _seconds(started["ts"]) >= 2.0
        if "experimental-memory-mlock" in flags:
            with open(f"/proc/{proc.pid}/status") as f:
                locked_kb = int(re.search(r"VmLck:\s+(\d+)", f.read()).group(1))
            assert locked_kb > 0
        with grpc.insecure_channel(proc.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            maintenance = rpc_pb2_grpc.MaintenanceStub(channel)

            def status():
                return maintenance.Status(rpc_pb2.StatusRequest(), timeout=10)

            for n in range(4):
                kv.Put(rpc_pb2.PutRequest(key=b"big%d" % n, value=os.urandom(1 << 20)), timeout=10)
            assert _wait_for(lambda: status().dbSizeInUse >= 4 << 20)  # committed to the file
            done = kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"big", range_end=b"bih"), timeout=10)
            kv.Compact(rpc_pb2.CompactionRequest(revision=done.header.revision, physical=True), timeout=10)
            assert _wait_for(lambda: (now := status()).dbSize - now.dbSizeInUse >= 2 << 20)
            before = status()
        proc.restart()  # frees more than the 1 MB threshold: the start defragments
        with grpc.insecure_channel(proc.endpoint) as channel:
            after = rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=10)
        assert after.dbSize < before.dbSize - (2 << 20)
        assert _log(proc, "bootstrap defragmentation")
    finally:
        proc.stop()


def _time_to_live(endpoint: str, lease_id: int) -> int:
    with grpc.insecure_channel(endpoint) as channel:
        lease = rpc_pb2_grpc.LeaseStub(channel)
        return lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id), timeout=10).TTL


def test_persisted_lease_checkpoints_keep_the_remaining_ttl_over_a_restart(tmp_path):
    flags = {"experimental-enable-lease-checkpoint": "true", "experimental-enable-lease-checkpoint-persist": "true"}
    # etcd checkpoints every 5 minutes; the test-only knob makes it every second.
    proc = _member(tmp_path, "lease", flags, env={"ETCDX_TEST_LEASE_CHECKPOINT_INTERVAL": "1"}).start()
    try:
        with grpc.insecure_channel(proc.endpoint) as channel:
            granted = rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=10)
        time.sleep(4)  # checkpoints at about 59, 58, 57, 56 s remaining
        proc.restart()
        # Without the checkpoint the restarted leader would give the lease its whole 60 s again (plus the
        # election timeout etcd adds on promotion).
        assert _time_to_live(proc.endpoint, granted.ID) <= 58
    finally:
        proc.stop()


def test_a_new_leader_starts_leases_from_their_checkpoints(tmp_path):
    members = etcdx_cluster(tmp_path, 3, extra_args=("--experimental-enable-lease-checkpoint",))
    for member in members:
        member.env["ETCDX_TEST_LEASE_CHECKPOINT_INTERVAL"] = "1"
    start_cluster(members)
    try:
        leader = current_leader(members)
        with grpc.insecure_channel(leader.endpoint) as channel:
            granted = rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=10)
        time.sleep(4)  # checkpoints at about 59, 58, 57, 56 s remaining, applied on every member
        leader.stop()
        survivors = [m for m in members if m is not leader]
        assert _wait_for(lambda: current_leader(survivors) is not None)
        # Without checkpoints the new leader would give the lease its whole 60 s again (plus an election timeout).
        assert _time_to_live(survivors[0].endpoint, granted.ID) <= 58
    finally:
        stop_cluster(members)


def _seconds(ts: str) -> float:
    """Seconds of the day from a zap timestamp such as 2026-12-03T19:20:06.084Z."""
    hours, minutes, seconds = ts.split("T")[1].rstrip("Z").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--v2-deprecation=gone", "--enable-v2"], "--enable-v2 and --v2-deprecation=gone are mutually exclusive"),
        (["--auto-compaction-mode=bogus"], 'unknown auto-compaction-mode "bogus"'),
        (["--enable-pprof"], "--enable-pprof serves Go's runtime profiler"),
        (["--experimental-enable-distributed-tracing"], "--experimental-enable-distributed-tracing exports"),
        (["--discovery-srv=example.com"], "needs a discovery service outside this cluster"),
        (["--proxy=on"], "--proxy is etcd's v2 proxy mode"),
    ],
)
def test_refused_flags_stop_the_start_with_the_reason(tmp_path, argv, message):
    done = subprocess.run(
        [sys.executable, "-m", "etcdx", *argv, "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert message in done.stderr
    assert not (tmp_path / "d").exists()

"""Leader operations on a 3-member etcdx cluster (real processes on loopback, etcdctl 3.5.1 where it applies):
lease keep-alives and time-to-live through a follower reach the leader and survive a leader change; requests
that lose their leader, or never had one, get etcd 3.5.1's errors instead of waiting out the client; MoveLeader
with etcdctl's output and etcd's errors; the corruption checks find a member whose backend was edited offline.

The errors expected here are what a real etcd 3.5.1 cluster answers in the same situations
(scripts/leader_ops_oracle.py runs them against etcd or etcdx and prints comparable output): a Put on a member
without a leader waits out the request timeout (5 s + 2 x election timeout) and fails with code Unknown "context
deadline exceeded"; a linearizable Range there fails with "etcdserver: request timed out"; `etcdctl move-leader`
prints "Leadership transferred from X to Y".
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import grpc
import pytest

from etcdx.mvcc.backend import Backend
from etcdx.mvcc.schema import KEY_DB
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.pb.mvccpb import kv_pb2
from tests.support.procs import ETCDCTL, etcdx_cluster

REQUEST_TIMEOUT = 7.0  # 5 s + 2 x the default election timeout


def status(member) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(member.endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=5)


def member_id(member) -> int:
    return status(member).header.member_id


def leader_of(members, exclude: int = 0, timeout: float = 15.0):
    """The member all ``members`` agree leads (not ``exclude``), once they do."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = {status(m).leader for m in members}
        except grpc.RpcError:
            seen = None
        if seen and len(seen) == 1 and 0 not in seen and exclude not in seen:
            (lead,) = seen
            return next(m for m in members if member_id(m) == lead)
        time.sleep(0.1)
    raise AssertionError(f"no leader agreed on: {seen}")


def call(member, stub, method: str, request, timeout: float = 20.0, metadata=()):
    with grpc.insecure_channel(member.endpoint) as channel:
        return getattr(getattr(rpc_pb2_grpc, stub)(channel), method)(request, timeout=timeout, metadata=metadata)


def outcome(member, stub: str, method: str, request, timeout: float = 20.0, metadata=()):
    """(status code, details, seconds taken) of a call expected to fail."""
    started = time.monotonic()
    try:
        call(member, stub, method, request, timeout, metadata)
    except grpc.RpcError as exc:
        return exc.code(), exc.details(), time.monotonic() - started
    return grpc.StatusCode.OK, "", time.monotonic() - started


def in_threads(*calls):
    """Runs the zero-argument ``calls`` at once; their results, in order."""
    results = [None] * len(calls)

    def run(n, fn):
        results[n] = fn()

    threads = [threading.Thread(target=run, args=(n, fn)) for n, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def etcdctl(*args, endpoints: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ETCDCTL, "--endpoints", endpoints, *args], capture_output=True, text=True, timeout=30, env=os.environ
    )


@pytest.fixture
def cluster(tmp_path):
    members = start_cluster(tmp_path)
    try:
        yield members
    finally:
        stop_all(members)


def start_cluster(tmp_path, extra_args: tuple[str, ...] = ()):
    members = etcdx_cluster(tmp_path, 3, extra_args)
    for member in members:
        member.launch()
    try:
        for member in members:
            member.wait_ready()
    except BaseException:
        stop_all(members)
        raise
    return members


def stop_all(members) -> None:
    for member in members:
        if member.proc is not None and member.proc.poll() is None:
            os.kill(member.pid, signal.SIGCONT)  # a paused member must be able to stop
        member.stop()


class KeepAlive:
    """A LeaseKeepAlive stream held on one member, renewing ``lease`` every ``every`` seconds in a thread;
    ``ttls`` collects the TTLs answered, ``error`` the error that ended the stream (``metadata``: the call's)."""

    def __init__(self, member, lease: int, every: float, metadata=()) -> None:
        self.ttls: list[int] = []
        self.error: grpc.RpcError | None = None
        self._stop = threading.Event()
        self._channel = grpc.insecure_channel(member.endpoint)
        self._lease, self._every, self._metadata = lease, every, metadata
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _requests(self):
        while not self._stop.is_set():
            yield rpc_pb2.LeaseKeepAliveRequest(ID=self._lease)
            self._stop.wait(self._every)

    def _run(self) -> None:
        try:
            stub = rpc_pb2_grpc.LeaseStub(self._channel)
            for response in stub.LeaseKeepAlive(self._requests(), metadata=self._metadata):
                self.ttls.append(response.TTL)
        except grpc.RpcError as exc:
            if not self._stop.is_set():
                self.error = exc

    def close(self) -> None:
        self._stop.set()
        self._channel.close()
        self._thread.join(timeout=10)


def time_to_live(member, lease: int) -> rpc_pb2.LeaseTimeToLiveResponse:
    return call(member, "LeaseStub", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=lease), timeout=10)


def test_a_lease_kept_alive_through_a_follower_lives_on_through_a_leader_change(cluster):
    leader = leader_of(cluster)
    follower, other = [m for m in cluster if m is not leader]
    # Granted and kept alive through the follower, with the shortest TTL etcd allows (2 s for 1 s elections).
    lease = call(follower, "LeaseStub", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=2)).ID
    idle = call(follower, "LeaseStub", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=2)).ID
    keep = KeepAlive(follower, lease, every=0.5)
    try:
        time.sleep(4)  # twice the TTL
        ttl = time_to_live(follower, lease)  # forwarded: the leader's expiry, not the follower's granted TTL
        assert ttl.TTL in (1, 2) and ttl.grantedTTL == 2, ttl
        assert ttl.header.member_id == member_id(follower)
        assert time_to_live(follower, idle).TTL == -1  # not kept alive: the leader revoked it
        # The leader dies; the other two elect a new one, whose lessor takes over the lease with an extension.
        old_leader = member_id(leader)
        leader.kill9()
        leader_of([follower, other], exclude=old_leader)
        time.sleep(3)
        assert time_to_live(other, lease).TTL in (1, 2)
        assert keep.error is None, keep.error
        assert keep.ttls and keep.ttls[-1] == 2
    finally:
        keep.close()
    # Unknown leases, through a follower: TTL -1 from TimeToLive and TTL 0 from a keep-alive, as etcd answers.
    assert time_to_live(follower, 0x1234).TTL == -1
    once = KeepAlive(follower, 0x1234, every=5)
    time.sleep(1)
    once.close()
    assert once.ttls[:1] == [0]
    # etcdctl 3.5.1 through the follower prints what it prints against etcd 3.5.1's followers.
    alive = etcdctl("lease", "keep-alive", "--once", f"{lease:x}", endpoints=follower.endpoint)
    assert alive.stdout == f"lease {lease:016x} keepalived with TTL(2)\n"
    ttl_line = etcdctl("lease", "timetolive", f"{lease:x}", endpoints=follower.endpoint).stdout
    assert ttl_line in (f"lease {lease:016x} granted with TTL(2s), remaining({n}s)\n" for n in (1, 2))
    gone = etcdctl("lease", "timetolive", "1234", endpoints=follower.endpoint)
    assert gone.stdout == "lease 0000000000001234 already expired\n"
    unknown = etcdctl("lease", "keep-alive", "--once", "1234", endpoints=follower.endpoint)
    assert unknown.stderr.splitlines()[-1] == "Error: etcdserver: requested lease not found"


def test_a_member_without_a_leader_answers_with_etcds_errors(cluster):
    """etcd 3.5.1, two of three members killed, on the survivor: Put waits the request timeout and fails with
    Unknown "context deadline exceeded"; a linearizable Range fails with "etcdserver: request timed out"; a
    serializable Range is served; lease calls, which need the leader, fail with "etcdserver: no leader". With
    the `hasleader` metadata (clientv3's WithRequireLeader) a call is refused at once with "no leader", and an
    open stream that carried it ends with that error after 3 election timeouts without a leader."""
    survivor, *others = cluster
    call(survivor, "KVStub", "Put", rpc_pb2.PutRequest(key=b"k", value=b"v"))
    lease = call(survivor, "LeaseStub", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=60)).ID
    require_leader = (("hasleader", "true"),)
    keep = KeepAlive(survivor, lease, every=0.5, metadata=require_leader)
    for member in others:
        member.kill9()
    time.sleep(2.5)  # past an election timeout: it knows it has no leader
    assert status(survivor).leader == 0
    refused = outcome(survivor, "KVStub", "Range", rpc_pb2.RangeRequest(key=b"k"), metadata=require_leader)
    assert refused[:2] == (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader") and refused[2] < 1
    put, read, ttl = in_threads(
        lambda: outcome(survivor, "KVStub", "Put", rpc_pb2.PutRequest(key=b"k2", value=b"v")),
        lambda: outcome(survivor, "KVStub", "Range", rpc_pb2.RangeRequest(key=b"k")),
        lambda: outcome(survivor, "LeaseStub", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=lease)),
    )
    assert put[:2] == (grpc.StatusCode.UNKNOWN, "context deadline exceeded")
    assert read[:2] == (grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out")
    assert ttl[:2] == (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
    for _, _, took in (put, read, ttl):
        assert REQUEST_TIMEOUT - 0.5 < took < REQUEST_TIMEOUT + 3
    served = call(survivor, "KVStub", "Range", rpc_pb2.RangeRequest(key=b"k", serializable=True))
    assert [kv.value for kv in served.kvs] == [b"v"]
    keep.close()
    assert keep.error is not None and keep.error.code() == grpc.StatusCode.UNAVAILABLE
    assert keep.error.details() == "etcdserver: no leader"


def test_requests_lost_with_their_leader_get_etcds_errors(cluster):
    """The leader pauses (SIGSTOP) with a Put and a linearizable Range in flight through the followers: the
    read fails with "leader changed" once they elect another leader; the Puts, lost with the old leader, fail
    after the request timeout: "possibly due to previous leader failure" on the member that became leader
    soon after it was made, "request timed out" on the other."""
    leader = leader_of(cluster)
    followers = [m for m in cluster if m is not leader]
    old = member_id(leader)
    os.kill(leader.pid, signal.SIGSTOP)
    try:
        time.sleep(0.2)
        read, put_a, put_b = in_threads(
            lambda: outcome(followers[0], "KVStub", "Range", rpc_pb2.RangeRequest(key=b"k")),
            lambda: outcome(followers[0], "KVStub", "Put", rpc_pb2.PutRequest(key=b"a", value=b"1")),
            lambda: outcome(followers[1], "KVStub", "Put", rpc_pb2.PutRequest(key=b"b", value=b"1")),
        )
        new = leader_of(followers, exclude=old)
    finally:
        leader.kill9()
    assert read[:2] == (grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed")
    assert read[2] < REQUEST_TIMEOUT
    by_member = {id(followers[0]): put_a, id(followers[1]): put_b}
    assert by_member[id(new)][:2] == (
        grpc.StatusCode.UNAVAILABLE,
        "etcdserver: request timed out, possibly due to previous leader failure",
    )
    other = next(m for m in followers if m is not new)
    assert by_member[id(other)][:2] == (grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out")
    assert call(other, "KVStub", "Range", rpc_pb2.RangeRequest(key=b"a")).count == 0  # lost, as answered


def test_move_leader_with_etcdctl(cluster):
    endpoints = ",".join(m.endpoint for m in cluster)
    leader = leader_of(cluster)
    follower = next(m for m in cluster if m is not leader)
    source, target = member_id(leader), member_id(follower)
    member_id_of = {id(m): member_id(m) for m in cluster}
    done = etcdctl("move-leader", f"{target:x}", endpoints=endpoints)
    assert (done.returncode, done.stdout) == (0, f"Leadership transferred from {source:x} to {target:x}\n")
    assert leader_of(cluster) is follower
    again = etcdctl("move-leader", f"{target:x}", endpoints=endpoints)  # to itself: a no-op, as in etcd
    assert again.stdout == f"Leadership transferred from {target:x} to {target:x}\n"
    bad = etcdctl("move-leader", "1234", endpoints=endpoints)
    assert bad.returncode == 1 and bad.stderr.splitlines()[-1] == "Error: etcdserver: bad leader transferee"
    no_leader_endpoint = etcdctl("move-leader", f"{source:x}", endpoints=leader.endpoint)  # now a follower
    assert no_leader_endpoint.returncode == 128
    assert no_leader_endpoint.stderr.strip() == f"Error: no leader endpoint given at [{leader.endpoint}]"
    refused = outcome(leader, "MaintenanceStub", "MoveLeader", rpc_pb2.MoveLeaderRequest(targetID=source))
    assert refused[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: not leader")
    # A transfer to a paused member cannot finish: without a deadline of its own the call gets etcd's error
    # after the request timeout (etcd would wait for the caller's deadline).
    paused = next(m for m in cluster if m is not follower)
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        request = rpc_pb2.MoveLeaderRequest(targetID=member_id_of[id(paused)])
        started = time.monotonic()
        with grpc.insecure_channel(follower.endpoint) as channel, pytest.raises(grpc.RpcError) as too_long:
            rpc_pb2_grpc.MaintenanceStub(channel).MoveLeader(request)
        took = time.monotonic() - started
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    assert (too_long.value.code(), too_long.value.details()) == (
        grpc.StatusCode.UNAVAILABLE,
        "etcdserver: request timed out, leader transfer took too long",
    )
    assert REQUEST_TIMEOUT - 0.5 < took < REQUEST_TIMEOUT + 3


def plant_divergence(member, key: bytes) -> None:
    """Edits the stopped ``member``'s backend offline: the stored value of ``key``'s first revision changes."""
    backend = Backend(os.path.join(member.data_dir, "member", "kv"))
    try:
        with backend.begin_write() as txn:
            for row_key, row in txn.scan(KEY_DB):
                kv = kv_pb2.KeyValue.FromString(row)
                if kv.key == key:
                    kv.value = b"planted"
                    txn.put(KEY_DB, row_key, kv.SerializeToString())
                    break
            else:
                raise AssertionError(f"{key!r} not in the backend")
    finally:
        backend.close()


def test_corruption_checks_find_a_member_edited_offline(tmp_path):
    members = start_cluster(tmp_path, ("--experimental-corrupt-check-time", "1s"))
    try:
        leader = leader_of(members)
        victim = next(m for m in members if m is not leader)
        victim_id = member_id(victim)
        for n in range(5):
            call(leader, "KVStub", "Put", rpc_pb2.PutRequest(key=b"key%d" % n, value=b"v"))
        time.sleep(1)
        victim.stop()
        plant_divergence(victim, b"key2")
        # Initial check: the member compares its HashKV with its peers' before serving, and refuses to start.
        plain_argv = list(victim.argv)
        victim.argv = [*plain_argv, "--experimental-initial-corrupt-check"]
        victim.launch()
        assert victim.proc.wait(timeout=30) != 0
        log = victim.log_tail(60)
        assert "found different hash values from remote peer" in log
        assert f"{victim_id:x} found data inconsistency with peers" in log
        # Periodic check: started without the initial check, the member serves; the leader's next check finds
        # it and raises the CORRUPT alarm for it through the log.
        victim.argv = plain_argv
        victim.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            alarms = etcdctl("alarm", "list", endpoints=leader.endpoint).stdout
            if alarms:
                break
            time.sleep(0.3)
        assert alarms == f"memberID:{victim_id} alarm:CORRUPT \n"
        leader_log = leader.log_tail(400)
        assert "same compact revision then hashes must match" in leader_log
        assert "alarm raised" in leader_log
        refused = outcome(leader, "KVStub", "Put", rpc_pb2.PutRequest(key=b"after", value=b"v"))
        assert refused[:2] == (grpc.StatusCode.DATA_LOSS, "etcdserver: corrupt cluster")
    finally:
        stop_all(members)

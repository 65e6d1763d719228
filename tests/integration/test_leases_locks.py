"""Leases, Lock and Election against a real etcdx process, as clients use them."""

from __future__ import annotations

import subprocess
import threading
import time

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.pb.v3electionpb import v3election_pb2 as el
from etcdx.pb.v3electionpb import v3election_pb2_grpc as elg
from etcdx.pb.v3lockpb import v3lock_pb2 as lk
from etcdx.pb.v3lockpb import v3lock_pb2_grpc as lkg
from tests.compat.watch_client import RecordingWatch
from tests.integration.test_etcdctl import CLIENTS


@pytest.fixture
def stubs(etcdx_server):
    channel = grpc.insecure_channel(etcdx_server.endpoint)
    yield (
        rpc_pb2_grpc.KVStub(channel),
        rpc_pb2_grpc.LeaseStub(channel),
        lkg.LockStub(channel),
        elg.ElectionStub(channel),
    )
    channel.close()


def test_expired_lease_deletes_its_keys_with_delete_events(etcdx_server, stubs):
    kv, lease, _, _ = stubs
    granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=2))
    assert granted.TTL == 2
    watch = RecordingWatch(etcdx_server.endpoint)
    try:
        watch.create(rpc_pb2.WatchCreateRequest(key=b"svc/", range_end=b"svc0"))
        granted_at = time.monotonic()
        for name in (b"svc/a", b"svc/b"):
            kv.Put(rpc_pb2.PutRequest(key=name, value=b"up", lease=granted.ID))
        deleted = watch.wait_for(lambda r: any(e.type == 1 for e in r.events), 0, timeout=10)
        elapsed = time.monotonic() - granted_at
        assert sorted(e.kv.key for e in deleted.events) == [b"svc/a", b"svc/b"]
        assert len({e.kv.mod_revision for e in deleted.events}) == 1  # one revision for the revoke
        assert elapsed <= granted.TTL + 1.0
    finally:
        watch.close()
    assert kv.Range(rpc_pb2.RangeRequest(key=b"svc/", range_end=b"svc0")).count == 0
    assert lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=granted.ID)).TTL == -1


@pytest.mark.slow
def test_keep_alive_holds_a_lease_for_ten_ttls(stubs):
    kv, lease, _, _ = stubs
    granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=2))
    kv.Put(rpc_pb2.PutRequest(key=b"alive", value=b"1", lease=granted.ID))
    stop = threading.Event()

    def pings():
        while not stop.is_set():
            yield rpc_pb2.LeaseKeepAliveRequest(ID=granted.ID)
            stop.wait(0.6)

    answers = []
    reader = threading.Thread(target=lambda: answers.extend(r.TTL for r in lease.LeaseKeepAlive(pings())))
    reader.start()
    try:
        deadline = time.monotonic() + 10 * granted.TTL
        while time.monotonic() < deadline:
            assert kv.Range(rpc_pb2.RangeRequest(key=b"alive")).count == 1
            time.sleep(0.5)
    finally:
        stop.set()
        reader.join(timeout=5)
    assert answers and set(answers) == {2}


def test_lease_errors_and_listing(stubs):
    kv, lease, _, _ = stubs
    with pytest.raises(grpc.RpcError) as put_error:
        kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v", lease=12345))
    assert (put_error.value.code(), put_error.value.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "etcdserver: requested lease not found",
    )
    granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=100, ID=777))
    assert (granted.ID, granted.TTL) == (777, 100)
    with pytest.raises(grpc.RpcError) as exists:
        lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=100, ID=777))
    assert exists.value.details() == "etcdserver: lease already exists"
    assert [s.ID for s in lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest()).leases] == [777]
    kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v", lease=777))
    ttl = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=777, keys=True))
    assert (ttl.grantedTTL, list(ttl.keys)) == (100, [b"k"]) and 98 <= ttl.TTL <= 100
    before = kv.Range(rpc_pb2.RangeRequest(key=b"k")).header.revision
    revoked = lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=777))
    assert revoked.header.revision == before + 1
    with pytest.raises(grpc.RpcError) as gone:
        lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=777))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=1)).TTL == 2  # etcd's minimum TTL


def test_leases_survive_a_restart(etcdx_server):
    channel = grpc.insecure_channel(etcdx_server.endpoint)
    lease = rpc_pb2_grpc.LeaseStub(channel)
    kv = rpc_pb2_grpc.KVStub(channel)
    granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=300))
    kv.Put(rpc_pb2.PutRequest(key=b"held", value=b"v", lease=granted.ID))
    negative = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=300, ID=-5))  # int64: clients may pick these
    channel.close()
    etcdx_server.restart()
    channel = grpc.insecure_channel(etcdx_server.endpoint)
    lease = rpc_pb2_grpc.LeaseStub(channel)
    ttl = rpc_pb2_grpc.LeaseStub(channel).LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=granted.ID, keys=True))
    assert ttl.grantedTTL == 300 and list(ttl.keys) == [b"held"]
    assert lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=negative.ID)).grantedTTL == 300
    lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=granted.ID))
    assert rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"held")).count == 0
    channel.close()


def test_lock_is_never_held_twice(etcdx_server, stubs):
    """Two contending clients over many rounds; each holder checks nobody else holds it, and the
    lock's revision (the fencing token) grows with every acquisition."""
    kv, lease, lock, _ = stubs
    rounds = 25
    tokens: list[int] = []
    holder: list[str] = []
    violations: list[str] = []
    guard = threading.Lock()

    def client(name: str) -> None:
        granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30))
        for _ in range(rounds):
            held = lock.Lock(lk.LockRequest(name=b"fence", lease=granted.ID), timeout=30)
            with guard:
                if holder:
                    violations.append(f"{name} acquired while {holder[-1]} held the lock")
                holder.append(name)
                tokens.append(held.header.revision)
            kv.Put(rpc_pb2.PutRequest(key=b"fenced", value=name.encode()))
            time.sleep(0.002)
            if kv.Range(rpc_pb2.RangeRequest(key=b"fenced")).kvs[0].value != name.encode():
                violations.append(f"{name} saw another writer while holding the lock")
            with guard:
                holder.pop()
            lock.Unlock(lk.UnlockRequest(key=held.key))

    threads = [threading.Thread(target=client, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert violations == []
    assert len(tokens) == 2 * rounds
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_lock_is_released_when_its_holders_lease_expires(stubs):
    _, lease, lock, _ = stubs
    short = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=2)).ID
    first = lock.Lock(lk.LockRequest(name=b"expiring", lease=short))
    started = time.monotonic()
    second = lock.Lock(lk.LockRequest(name=b"expiring"), timeout=15)
    assert second.key != first.key
    assert time.monotonic() - started >= 1.0  # it had to wait for the expiry


def test_election_campaign_observe_proclaim_resign(stubs):
    _, lease, _, election = stubs
    with pytest.raises(grpc.RpcError) as none:
        election.Leader(el.LeaderRequest(name=b"cluster-leader"))
    assert (none.value.code(), none.value.details()) == (grpc.StatusCode.UNKNOWN, "election: no leader")
    first = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID
    won = election.Campaign(el.CampaignRequest(name=b"cluster-leader", lease=first, value=b"node-1"))
    observed = election.Observe(el.LeaderRequest(name=b"cluster-leader"), timeout=20)
    assert next(observed).kv.value == b"node-1"
    election.Proclaim(el.ProclaimRequest(leader=won.leader, value=b"node-1-v2"))
    assert next(observed).kv.value == b"node-1-v2"
    second = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID
    waiting = election.Campaign.future(el.CampaignRequest(name=b"cluster-leader", lease=second, value=b"node-2"))
    time.sleep(0.3)
    assert not waiting.done()
    election.Resign(el.ResignRequest(leader=won.leader))
    assert waiting.result(timeout=10).leader.key != won.leader.key
    assert next(observed).kv.value == b"node-2"
    assert election.Leader(el.LeaderRequest(name=b"cluster-leader")).kv.value == b"node-2"
    with pytest.raises(grpc.RpcError) as stale:
        election.Proclaim(el.ProclaimRequest(leader=won.leader, value=b"x"))
    assert stale.value.details() == "election: not leader"
    observed.cancel()


@CLIENTS
def test_etcdctl_lock_and_elect_recipes(binary, etcdx_server):
    ep = etcdx_server.endpoint
    held = subprocess.run(
        [binary, "--endpoints", ep, "lock", "job", "--", "echo", "running-with-lock"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert held.returncode == 0 and "running-with-lock" in held.stdout
    elect = subprocess.Popen(
        [binary, "--endpoints", ep, "elect", "leader-election", "proposal-1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = elect.stdout.readline()
        assert line.startswith("leader-election/")
        assert elect.stdout.readline() == "proposal-1\n"
        listener = subprocess.Popen(
            [binary, "--endpoints", ep, "elect", "-l", "leader-election"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert listener.stdout.readline() == line
            assert listener.stdout.readline() == "proposal-1\n"
        finally:
            listener.terminate()
            listener.wait(timeout=10)
    finally:
        elect.terminate()
        elect.wait(timeout=10)

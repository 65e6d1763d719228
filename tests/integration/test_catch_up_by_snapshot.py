"""Catch-up by snapshot, with real processes: a follower killed (kill -9) while more than --snapshot-count
writes, leases and a compaction land comes back, is sent the leader's snapshot (its log says so), and then
holds what the others hold: the same HashKV at the same revision, the same keys on a serializable Range,
the same leases. A member paused (SIGSTOP) instead catches up the same way under an open watch stream: the
watch gets every event of the writes it missed, in order and once; with a compaction past its revision in
between, it is cancelled with that compact revision, as etcd cancels a watcher that fell behind one."""

from __future__ import annotations

import json
import signal
import time

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.compat.watch_client import RecordingWatch
from tests.support.procs import etcdx_cluster, start_cluster, stop_cluster

SNAPSHOT_COUNT = 100
WRITES = 500


def stub(member, kind):
    channel = grpc.insecure_channel(member.endpoint)
    return channel, getattr(rpc_pb2_grpc, kind)(channel)


def status(member) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(member.endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=5)


def hash_kv(member, revision: int) -> rpc_pb2.HashKVResponse:
    with grpc.insecure_channel(member.endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=10)


def serializable_range(member, prefix: bytes) -> rpc_pb2.RangeResponse:
    with grpc.insecure_channel(member.endpoint) as channel:
        request = rpc_pb2.RangeRequest(key=prefix, range_end=prefix[:-1] + bytes([prefix[-1] + 1]), serializable=True)
        return rpc_pb2_grpc.KVStub(channel).Range(request, timeout=10)


def leases(member) -> list[int]:
    with grpc.insecure_channel(member.endpoint) as channel:
        found = rpc_pb2_grpc.LeaseStub(channel).LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=10).leases
    return sorted(lease.ID for lease in found)


def log_records(member, message: str) -> list[dict]:
    records = []
    with open(member.log_path, errors="replace") as f:
        for line in f:
            if f'"msg":"{message}"' in line:
                records.append(json.loads(line))
    return records


@pytest.fixture
def cluster(tmp_path):
    flags = ("--snapshot-count", str(SNAPSHOT_COUNT), "--experimental-snapshot-catchup-entries", "10")
    members = etcdx_cluster(tmp_path, 3, flags)
    start_cluster(members)
    try:
        yield members
    finally:
        stop_cluster(members)


def test_a_member_down_for_more_than_snapshot_count_writes_catches_up_by_snapshot(cluster):
    leader_id = status(cluster[0]).leader
    lagging = next(m for m in cluster if status(m).header.member_id != leader_id)
    live = [m for m in cluster if m is not lagging]
    leader = next(m for m in live if status(m).header.member_id == leader_id)
    channels = []
    try:
        kv = []
        for member in live:
            channel, client = stub(member, "KVStub")
            channels.append(channel)
            kv.append(client)
        kv[0].Put(rpc_pb2.PutRequest(key=b"w/before", value=b"0"), timeout=10)
        lagging_index_before = status(lagging).raftIndex
        lagging.kill9()

        channel, lease_client = stub(leader, "LeaseStub")
        channels.append(channel)
        granted = [lease_client.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=600), timeout=10).ID for _ in range(3)]
        for n in range(WRITES):
            lease = granted[n % 3] if n % 10 == 0 else 0
            kv[n % 2].Put(rpc_pb2.PutRequest(key=b"w/%04d" % (n % 300), value=b"v%d" % n, lease=lease), timeout=10)
        lease_client.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=granted[1]), timeout=10)
        compact_at = kv[0].Put(rpc_pb2.PutRequest(key=b"w/compact-mark", value=b"x"), timeout=10).header.revision
        kv[1].DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"w/0000", range_end=b"w/0010"), timeout=10)
        kv[0].Compact(rpc_pb2.CompactionRequest(revision=compact_at, physical=True), timeout=10)
        last = kv[1].Put(rpc_pb2.PutRequest(key=b"w/last", value=b"z"), timeout=10).header.revision
        time.sleep(1)  # a backend sync: the members snapshot and compact their raft log behind it

        lagging.launch()
        lagging.wait_ready()  # serves only once it applied everything the leader committed

        applied = log_records(lagging, "applied snapshot")
        assert applied, f"no snapshot installed:\n{lagging.log_tail(30)}"
        assert applied[-1]["incoming_leader_snapshot_index"] > lagging_index_before + SNAPSHOT_COUNT
        assert log_records(leader, "sent database snapshot")

        assert status(lagging).header.revision >= last
        hashes = {m.log_path: hash_kv(m, last) for m in cluster}
        assert len({(h.hash, h.compact_revision) for h in hashes.values()}) == 1, hashes
        assert hashes[lagging.log_path].compact_revision == compact_at
        expected = serializable_range(leader, b"w/")
        got = serializable_range(lagging, b"w/")
        assert list(got.kvs) == list(expected.kvs)
        # w/0000..0299, before, mark, last; less 0000..0009 and the keys of the revoked lease
        assert got.count == expected.count and 250 < got.count < 300 + 3 - 10
        assert leases(lagging) == leases(leader) == sorted([granted[0], granted[2]])
        # It goes on replicating what comes after.
        kv[0].Put(rpc_pb2.PutRequest(key=b"w/after", value=b"a"), timeout=10)
        deadline = time.monotonic() + 10
        while serializable_range(lagging, b"w/after").count != 1:
            assert time.monotonic() < deadline, "the member stopped replicating after the snapshot"
            time.sleep(0.1)
    finally:
        for channel in channels:
            channel.close()


@pytest.mark.parametrize("compaction", [False, True])
def test_a_watch_open_on_a_paused_member_sees_the_snapshot_catch_up_once(cluster, compaction):
    """Some of the writes reach the paused member before the leader stops sending (256 appends in flight), the
    rest come in the snapshot. The watch gets each event once, in order: all of them, or (with a compaction
    past what it got before the snapshot) those it got, then a cancel with the compact revision."""
    leader_id = status(cluster[0]).leader
    paused = next(m for m in cluster if status(m).header.member_id != leader_id)
    leader = next(m for m in cluster if status(m).header.member_id == leader_id)
    channel, kv = stub(leader, "KVStub")
    watch = RecordingWatch(paused.endpoint)
    try:
        start = kv.Put(rpc_pb2.PutRequest(key=b"p/start", value=b"0"), timeout=10).header.revision + 1
        watch.create(rpc_pb2.WatchCreateRequest(key=b"p/", range_end=b"p0", start_revision=start))
        paused.proc.send_signal(signal.SIGSTOP)
        try:
            written = [kv.Put(rpc_pb2.PutRequest(key=b"p/%03d" % n, value=b"v"), timeout=10) for n in range(WRITES)]
            compact_at = written[-20].header.revision
            if compaction:
                kv.Compact(rpc_pb2.CompactionRequest(revision=compact_at), timeout=10)
            time.sleep(1)  # a backend sync: the leader compacts its raft log
        finally:
            paused.proc.send_signal(signal.SIGCONT)
        last = written[-1].header.revision
        ended = watch.wait_for(lambda r: r.canceled or any(e.kv.mod_revision == last for e in r.events), 0, 20)
        watch.wait_quiet(0.5)
        seen = [(e.kv.mod_revision, e.kv.key) for r in watch.responses for e in r.events]
        expected = [(w.header.revision, b"p/%03d" % n) for n, w in enumerate(written)]
        assert seen == expected[: len(seen)]
        if compaction:
            assert ended.canceled and ended.compact_revision == compact_at
            assert len(seen) < WRITES  # what came before the snapshot (the appends in flight), not the compacted rest
        else:
            assert not ended.canceled and len(seen) == WRITES
        assert log_records(paused, "applied snapshot"), paused.log_tail(20)
    finally:
        watch.close()
        channel.close()

"""A short fault campaign in CI (scripts/fault_campaign.py runs the long one): a 3-member etcdx cluster, peers
behind proxies that cut traffic, one member on LazyFS, under KV and watch traffic while a seeded schedule
injects kill -9, SIGSTOP pauses, symmetric and one-way partitions, slow fsync and member replacement. Every
history must be linearizable, every watch stream complete and in order, no acknowledged write lost, the members' HashKV
equal, and the cluster healthy again after each fault. A planted bug shows the campaign catches one."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.faults.campaign import CampaignReport, campaign, check_writes
from tests.support.faults.cluster import fault_cluster, status
from tests.support.faults.proxy import BLACKHOLE, RESET
from tests.support.lazyfs import LazyFSMount
from tests.support.lincheck import LINEARIZABLE, VIOLATION
from tests.support.lincheck.history import Operation, Put, PutResponse
from tests.support.watch_checker import PUT

pytestmark = pytest.mark.campaign  # CI runs it once, with the compiled extensions (scripts/test.sh)


def test_a_partitioned_leader_is_replaced_and_rejoins_once_healed(tmp_path):
    """The proxies really cut: a leader cut off in both directions loses its leadership to another member."""
    cluster = fault_cluster(tmp_path, slow_disk=False)
    try:
        cluster.start()
        leader = cluster.leader()
        assert leader is not None
        for member in cluster.members:
            if member is not leader:
                cluster.proxies.cut(leader.member_id, member.member_id, BLACKHOLE)
                cluster.proxies.cut(member.member_id, leader.member_id, BLACKHOLE)
        deadline = time.monotonic() + 15
        others = [m for m in cluster.members if m is not leader]
        while time.monotonic() < deadline:
            leaders = set()
            for member in others:
                leaders.add(status(member.endpoint).leader)
            if len(leaders) == 1 and leader.member_id not in leaders and 0 not in leaders:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the members cut off from the leader elected no other leader")
        assert cluster.proxies.frames_dropped > 0
        cluster.proxies.heal()
        assert cluster.wait_healthy(20) is not None
    finally:
        cluster.stop()


def test_lazyfs_slow_fsync_mode_makes_each_fsync_wait_the_delay_file(tmp_path):
    """The slow-fsync fault is real: an fsync on the mount waits at least the delay the file names."""
    delay_file = tmp_path / "delay"
    delay_file.write_text("0\n")
    with LazyFSMount(str(tmp_path / "store"), str(tmp_path / "mnt"), fsync_delay_file=str(delay_file)):
        fd = os.open(tmp_path / "mnt" / "f", os.O_CREAT | os.O_WRONLY)
        try:
            os.write(fd, b"x")
            delay_file.write_text("0.6\n")
            started = time.monotonic()
            os.fsync(fd)
            slow = time.monotonic() - started
        finally:
            os.close(fd)
    assert slow >= 0.6


def _isolate(cluster, member) -> None:
    for other in cluster.members:
        if other is not member:
            cluster.proxies.cut(member.member_id, other.member_id, BLACKHOLE)
            cluster.proxies.cut(other.member_id, member.member_id, BLACKHOLE)


def test_a_leader_cut_off_with_a_read_pending_keeps_running(tmp_path):
    """Found by the campaign: a leader cut off with a linearizable read pending steps down (check quorum) and
    retries its ReadIndex with no leader to ask; it must refuse the read, not exit."""
    cluster = fault_cluster(tmp_path, slow_disk=False)
    try:
        cluster.start()
        leader = cluster.leader()
        _isolate(cluster, leader)

        def read() -> None:
            with grpc.insecure_channel(leader.endpoint) as channel, contextlib.suppress(grpc.RpcError):
                rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=8)

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(5)  # > election timeout (check quorum steps it down) + several ReadIndex retries
        cluster.proxies.heal()
        reader.join(timeout=10)
        assert leader.running, leader.process.log_tail()
        assert cluster.wait_healthy(20) is not None
    finally:
        cluster.stop()


def test_a_member_whose_inbound_was_reset_serves_linearizable_reads_soon_after_the_heal(tmp_path):
    """Found by the campaign (3 runs of 200 faults that never recovered): a leader whose inbound peer traffic is
    refused (reset mode) steps down (check quorum) and follows no leader; a linearizable read arriving then
    found no leader to ask, and its ReadIndex stayed "in flight" with no retry, so every later read on that
    member queued behind it for good. Once healed, the member must catch up with the new leader and answer
    linearizable reads within seconds."""
    cluster = fault_cluster(tmp_path, slow_disk=False)
    stop = threading.Event()

    def write(endpoint: str) -> None:
        with grpc.insecure_channel(endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            while not stop.is_set():
                with contextlib.suppress(grpc.RpcError):
                    kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), timeout=2)

    try:
        cluster.start()
        leader = cluster.leader()
        target = leader
        writers = [threading.Thread(target=write, args=(m.endpoint,)) for m in cluster.members if m is not target]
        for writer in writers:
            writer.start()
        for member in cluster.members:
            if member is not target:
                cluster.proxies.cut(member.member_id, target.member_id, RESET)
        deadline = time.monotonic() + 10
        while status(target.endpoint).leader != 0:  # it hears no quorum for an election timeout: steps down
            assert time.monotonic() < deadline, cluster.describe()
            time.sleep(0.01)
        with grpc.insecure_channel(target.endpoint) as channel, contextlib.suppress(grpc.RpcError):
            rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=0.5)  # no leader to ask
        assert cluster.proxies.connections_reset > 0
        cluster.proxies.heal()
        time.sleep(1)
        stop.set()
        for writer in writers:
            writer.join()
        assert cluster.wait_healthy(5) is not None, cluster.describe()
        with grpc.insecure_channel(target.endpoint) as channel:
            rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=2)
        assert status(target.endpoint).raftIndex == status(cluster.leader().endpoint).raftIndex, cluster.describe()
    finally:
        stop.set()
        cluster.stop()


def test_short_fault_campaign_finds_no_violation(tmp_path):
    report = campaign(tmp_path, faults=8, seed=3, faults_per_run=8)
    print(report.summary())
    assert report.injected == 8
    assert len(report.faults) >= 4, report.faults  # the seed draws most kinds
    assert report.operations > 500 and report.watch_events > 100
    # Member crashes are not asserted here: the one the campaign found has its own test above.
    assert report.verdicts == {LINEARIZABLE: 1}, report.summary()
    assert report.violations == [] and report.unrecovered == 0, report.summary()


def test_the_campaign_catches_followers_answering_linearizable_reads_locally(tmp_path):
    """The planted bug (tests/support/planted_etcdx.py): a partitioned member answers
    "linearizable" reads from its stale state, which the linearizability check must reject. Clients at full
    speed, so that reads land on a member while it lags."""
    planted = ("-m", "tests.support.planted_etcdx", "local-reads")
    # A stale read needs a read to land on the cut-off member after a write it missed: one short campaign
    # usually shows it, not always (CI once drew none in 4 partitions), so up to three seeds, stopping at the
    # first that catches it. A checker that cannot catch the bug fails all three.
    for seed in (5, 6, 7):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        report = campaign(run, faults=6, seed=seed, faults_per_run=6, kinds=("partition",), pace=0.0, command=planted)
        print(report.summary())
        if report.verdicts.get(VIOLATION):
            break
    assert report.verdicts.get(VIOLATION) == 1, report.summary()
    assert not report.passed


def test_an_acknowledged_put_missing_from_the_event_history_is_a_lost_write():
    history = [
        Operation(0, 1.0, 1.1, Put(b"robust/a", b"c0-1"), PutResponse(2)),
        Operation(1, 1.2, 1.3, Put(b"robust/a", b"c1-1"), PutResponse(3)),
    ]
    report = CampaignReport()
    check_writes(history, {2: [(PUT, b"robust/a", b"c0-1")], 3: [(PUT, b"robust/a", b"other")]}, report, 0)
    assert report.writes_found == 1
    assert len(report.violations) == 2  # c1-1 lost; "other" written by no client

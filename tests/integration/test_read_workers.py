"""--experimental-read-workers on a real member with 2 workers (real processes, real sockets, real clients).

Clients connect to the one client port; the kernel spreads their connections over the member and its workers
(SO_REUSEPORT), so each test opens many connections (one grpcio channel each, never sharing a subchannel) and
checks every one. Which process served what is counted from the workers' "read worker stopped" log lines.
The member's own answers are taken from its private unix socket (member/workers.sock), which only it serves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request

import grpc
import pytest

from etcdx.config import parse_config
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import (
    ETCDCTL,
    ServerProcess,
    current_leader,
    etcdx_cluster,
    etcdx_process,
    log_lines,
    start_cluster,
    stop_cluster,
    wait_workers_ready,
)
from tests.support.smaps import mapped_kib

WORKERS = 2
CONNECTIONS = 16
RANGE = "/etcdserverpb.KV/Range"


def channel(target: str) -> grpc.Channel:
    """A channel with a connection of its own (grpcio shares subchannels between channels unless told not to)."""
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def member(tmp_path):
    server = etcdx_process(tmp_path, extra_args=("--experimental-read-workers", str(WORKERS)))
    server.start()
    wait_workers_ready(server, WORKERS)
    yield server
    server.stop()


def stop_and_count(member: ServerProcess) -> list[dict]:
    """Stops the member; the workers' final counters (one "read worker stopped" line per worker run)."""
    member.stop()
    return log_lines(member, "read worker stopped")


def member_socket(member: ServerProcess) -> str:
    return "unix:" + os.path.join(member.data_dir, "member", "workers.sock")


def test_linearizable_reads_see_writes_acknowledged_on_other_connections(member):
    """For every connection, a write acknowledged on one connection is seen by a linearizable read on the next
    one, at once: a worker that served from its file without a barrier would answer from a snapshot up to
    --backend-batch-interval old and miss it."""
    counts = _puts_then_reads(member, b"lin/", reader_offset=1, serializable=False)
    assert len(counts) == WORKERS
    assert sum(line["local_ranges"] for line in counts) > 0, counts


def _puts_then_reads(member: ServerProcess, prefix: bytes, reader_offset: int, serializable: bool) -> list[dict]:
    """25 rounds over CONNECTIONS connections: a Put on connection i, then a Range of its key on connection
    i + reader_offset, which must see the Put. Stops the member; returns the workers' final counters."""
    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    stubs = [rpc_pb2_grpc.KVStub(c) for c in channels]
    try:
        for round_ in range(25):
            for i, stub in enumerate(stubs):
                key, value = prefix + b"%d" % i, b"%d-%d" % (round_, i)
                put = stub.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10)
                reader = stubs[(i + reader_offset) % CONNECTIONS]
                got = reader.Range(rpc_pb2.RangeRequest(key=key, serializable=serializable), timeout=10)
                assert [kv.value for kv in got.kvs] == [value], (round_, i)
                assert got.header.revision >= put.header.revision
    finally:
        for c in channels:
            c.close()
    return stop_and_count(member)


def test_serializable_reads_see_writes_acknowledged_on_the_same_connection(member):
    """A client reads its own write with a serializable Range on the connection it wrote on, whichever process
    serves that connection: a worker that served from its newest snapshot alone would answer from up to
    --backend-batch-interval ago and miss it. The worker serves those reads after a barrier instead."""
    counts = _puts_then_reads(member, b"ryw/", reader_offset=0, serializable=True)
    assert sum(line["local_ranges"] for line in counts) > 0, counts


def test_serializable_reads_see_writes_acknowledged_on_other_connections(member):
    """As on a single etcd member, a serializable Range sees every write acknowledged before it began, whichever
    processes served the write and the read: a worker checks its snapshot against the member's applied mark."""
    counts = _puts_then_reads(member, b"ser/", reader_offset=1, serializable=True)
    assert sum(line["local_ranges"] for line in counts) > 0, counts


@pytest.mark.parametrize(
    "serializable, written",
    [(True, True), (False, True), (False, False)],
    ids=["serializable", "linearizable", "linearizable-nothing-ever-written"],
)
def test_reads_are_served_by_workers_while_nothing_is_written(member, serializable, written):
    """The mark costs an idle member nothing: once the writes are committed, serializable reads are served from
    the workers' snapshots without a barrier each, and so are linearizable ones on a single member (it leads
    alone: applied_mark.py), also when nothing was written since it started (the member says it leads alone as
    soon as its workers' mark exists, not at its next apply)."""
    if written:
        kv = rpc_pb2_grpc.KVStub(channel(member.endpoint))
        kv.Put(rpc_pb2.PutRequest(key=b"idle", value=b"v"), timeout=10)
    time.sleep(1.0)  # past --backend-batch-interval: the member has committed the put (or its start)
    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    try:
        for c in channels:
            for _ in range(20):
                request = rpc_pb2.RangeRequest(key=b"idle", serializable=serializable)
                got = rpc_pb2_grpc.KVStub(c).Range(request, timeout=10)
                assert [kv.value for kv in got.kvs] == ([b"v"] if written else [])
    finally:
        for c in channels:
            c.close()
    counts = stop_and_count(member)
    served = sum(line["local_ranges"] for line in counts)
    barriers = sum(line["barriers"] for line in counts)
    assert served > 0 and barriers < served / 4, counts


def _metrics(member: ServerProcess) -> dict[str, float]:
    """The member's /metrics samples by their full text (name and labels)."""
    with urllib.request.urlopen(f"{member.client_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


RANGE_LABELS = 'grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"'


def test_metrics_count_every_range_once_in_whichever_process_answered_it(member):
    """/metrics counts each Range a client made once, whichever process answered it, and its error code; the
    workers' own barriers are not client requests. Fails if a worker's answers go uncounted (started falls short)
    or if barriers are counted (the "unknown" client requests grow by about one a second per worker)."""
    with channel(member.endpoint) as c:
        kv = rpc_pb2_grpc.KVStub(c)
        for i in range(3):
            kv.Put(rpc_pb2.PutRequest(key=b"m", value=b"%d" % i), timeout=10)
        kv.Compact(rpc_pb2.CompactionRequest(revision=3, physical=True), timeout=10)
    time.sleep(1.0)  # past --backend-batch-interval: the workers answer serializable reads from their file
    before = _metrics(member)
    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    try:
        for c in channels:
            kv = rpc_pb2_grpc.KVStub(c)
            for _ in range(10):
                kv.Range(rpc_pb2.RangeRequest(key=b"m", serializable=True), timeout=10)
            with pytest.raises(grpc.RpcError) as compacted:
                kv.Range(rpc_pb2.RangeRequest(key=b"m", revision=1, serializable=True), timeout=10)
            assert compacted.value.code() == grpc.StatusCode.OUT_OF_RANGE
        time.sleep(2.5)  # each worker sends a barrier every second while idle: none may be counted
    finally:
        for c in channels:
            c.close()
    after = _metrics(member)

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    calls = CONNECTIONS * 11
    assert grew(f"grpc_server_started_total{{{RANGE_LABELS}}}") == calls
    assert grew(f"grpc_server_msg_received_total{{{RANGE_LABELS}}}") == calls
    assert grew(f'grpc_server_handled_total{{grpc_code="OK",{RANGE_LABELS}}}') == CONNECTIONS * 10
    assert grew(f"grpc_server_msg_sent_total{{{RANGE_LABELS}}}") == CONNECTIONS * 10
    assert grew(f'grpc_server_handled_total{{grpc_code="OutOfRange",{RANGE_LABELS}}}') == CONNECTIONS
    assert grew('etcd_server_client_requests_total{client_api_version="unknown",type="unary"}') == calls
    counts = stop_and_count(member)
    assert sum(line["local_ranges"] for line in counts) > 0, counts


def test_workers_follow_a_defragmentation(member):
    """A defragmentation renames a new file over the one the workers have open: they reopen it, and linearizable
    reads on every connection still see the writes acknowledged before them."""
    with channel(member.endpoint) as c:
        kv = rpc_pb2_grpc.KVStub(c)
        for i in range(100):
            kv.Put(rpc_pb2.PutRequest(key=b"frag/%d" % (i % 10), value=b"x" * 300))
        kv.Compact(rpc_pb2.CompactionRequest(revision=90))
        rpc_pb2_grpc.MaintenanceStub(c).Defragment(rpc_pb2.DefragmentRequest(), timeout=30)
    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    try:
        writer = rpc_pb2_grpc.KVStub(channels[0])
        for round_ in range(3):
            for i, c in enumerate(channels):
                value = b"%d-%d" % (round_, i)
                writer.Put(rpc_pb2.PutRequest(key=b"frag/new", value=value), timeout=10)
                got = rpc_pb2_grpc.KVStub(c).Range(rpc_pb2.RangeRequest(key=b"frag/new"), timeout=10)
                assert [kv.value for kv in got.kvs] == [value]
    finally:
        for c in channels:
            c.close()
    counts = stop_and_count(member)
    assert sum(line["local_ranges"] for line in counts) > 0, counts


def test_repeated_defragmentations_under_workers_lose_nothing(member):
    """Each defragmentation swaps a new file in while the workers still have the old one open. LMDB's lock.mdb,
    which every process opening the file shares, must never pair the new file with the old one's state: it picks
    the meta page readers read, and the member's own reads then found an empty tree (its key index named
    revisions "the backend does not hold"). Every key written must stay readable, on the member and on every
    connection, after every one of several swaps."""
    member_kv = rpc_pb2_grpc.KVStub(grpc.insecure_channel(member_socket(member)))
    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    try:
        maintenance = rpc_pb2_grpc.MaintenanceStub(channels[0])
        for round_ in range(8):
            member_kv.Put(rpc_pb2.PutRequest(key=b"swap/%d" % round_, value=b"v"), timeout=10)
            maintenance.Defragment(rpc_pb2.DefragmentRequest(), timeout=30)
            expected = [b"swap/%d" % i for i in range(round_ + 1)]
            request = rpc_pb2.RangeRequest(key=b"swap/", range_end=b"swap0")
            assert sorted(kv.key for kv in member_kv.Range(request, timeout=10).kvs) == expected, round_
            for c in channels:
                got = rpc_pb2_grpc.KVStub(c).Range(request, timeout=10)
                assert sorted(kv.key for kv in got.kvs) == expected, round_
    finally:
        for c in channels:
            c.close()


def test_concurrent_writers_and_linearizable_readers(member):
    """Writers and readers on many connections at once, so barriers are in flight all the time: a read that
    joined a barrier sent before it arrived (rather than waiting for the next one) would miss a write
    acknowledged before the read began."""
    errors: list[str] = []

    def client(n: int) -> None:
        write, read = channel(member.endpoint), channel(member.endpoint)
        try:
            put, get = rpc_pb2_grpc.KVStub(write).Put, rpc_pb2_grpc.KVStub(read).Range
            for i in range(60):
                value = b"%d-%d" % (n, i)
                put(rpc_pb2.PutRequest(key=b"conc/%d" % n, value=value), timeout=10)
                got = get(rpc_pb2.RangeRequest(key=b"conc/%d" % n), timeout=10)
                if [kv.value for kv in got.kvs] != [value]:
                    errors.append(f"client {n} round {i}: {[kv.value for kv in got.kvs]} != {value}")
        finally:
            write.close()
            read.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:5]
    counts = stop_and_count(member)
    assert sum(line["local_ranges"] for line in counts) > 0, counts


def test_linearizable_pages_outlasting_a_serving_budget_see_every_acknowledged_write(member):
    """Many costly linearizable reads at once (500-key pages), so one barrier covers more reads than a worker
    serves in one go and its serving task serves the rest later: each page must still hold the counter's value
    acknowledged before the read began (the first key of the page), however late it is served."""
    first = channel(member.endpoint)
    try:
        put = rpc_pb2_grpc.KVStub(first).Put
        for i in range(600):
            put(rpc_pb2.PutRequest(key=b"page/%04d" % i, value=b"v" * 200), timeout=10)
    finally:
        first.close()
    acknowledged = [0]  # the counter's last value the writer saw acknowledged
    errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        write = channel(member.endpoint)
        try:
            put = rpc_pb2_grpc.KVStub(write).Put
            for i in range(1, 100_000):
                if stop.is_set():
                    return
                put(rpc_pb2.PutRequest(key=b"page/!counter", value=b"%d" % i), timeout=10)
                acknowledged[0] = i
        except Exception as exc:
            errors.append(f"writer: {exc!r}")
        finally:
            write.close()

    def reader(n: int) -> None:
        read = channel(member.endpoint)
        try:
            get = rpc_pb2_grpc.KVStub(read).Range
            for round_ in range(15):
                before = acknowledged[0]
                page = get(rpc_pb2.RangeRequest(key=b"page/", range_end=b"page0", limit=500), timeout=10)
                if len(page.kvs) != 500:
                    errors.append(f"reader {n} round {round_}: {len(page.kvs)} keys")
                    continue
                seen = int(page.kvs[0].value) if page.kvs[0].key == b"page/!counter" else 0
                if seen < before:
                    errors.append(f"reader {n} round {round_}: counter {seen} < {before}")
        except Exception as exc:  # a failure must fail the test, not just end this thread
            errors.append(f"reader {n}: {exc!r}")
        finally:
            read.close()

    write_thread = threading.Thread(target=writer)
    write_thread.start()
    threads = [threading.Thread(target=reader, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stop.set()
    write_thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in (*threads, write_thread))
    assert not errors, errors[:5]
    assert acknowledged[0] > 0
    counts = stop_and_count(member)
    assert sum(line["served_by_task"] for line in counts) > 0, counts


def test_three_member_cluster_with_workers(tmp_path):
    """Workers on followers too: their barrier is the follower's ReadIndex through the leader, so a write made on
    any member is seen by a linearizable read through any member's connections."""
    members = start_cluster(etcdx_cluster(tmp_path, 3, extra_args=("--experimental-read-workers", "1")))
    try:
        for m in members:
            wait_workers_ready(m, 1)
        for round_ in range(6):
            for w, writer in enumerate(members):
                for r, reader in enumerate(members):
                    with channel(writer.endpoint) as cw, channel(reader.endpoint) as cr:
                        value = b"%d-%d-%d" % (round_, w, r)
                        rpc_pb2_grpc.KVStub(cw).Put(rpc_pb2.PutRequest(key=b"c", value=value), timeout=10)
                        got = rpc_pb2_grpc.KVStub(cr).Range(rpc_pb2.RangeRequest(key=b"c"), timeout=10)
                        assert [kv.value for kv in got.kvs] == [value], (round_, w, r)
    finally:
        stop_cluster(members)
    counts = [line for m in members for line in log_lines(m, "read worker stopped")]
    assert sum(line["local_ranges"] for line in counts) > 0, counts


CLUSTER_REQUEST_TIMEOUT = 7.0  # a member's request timeout: 5 s + 2 x the default election timeout


def accepted_connections(pid: int, port: int) -> int:
    """How many established TCP connections on local ``port`` the process ``pid`` holds (/proc/net/tcp)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def channel_to_worker(member: ServerProcess, worker: int) -> grpc.Channel:
    """A connected channel whose connection the kernel gave to the worker process ``worker``."""
    for _ in range(64):
        before = accepted_connections(worker, member.client_port)
        candidate = channel(member.endpoint)
        grpc.channel_ready_future(candidate).result(timeout=10)
        time.sleep(0.05)
        if accepted_connections(worker, member.client_port) > before:
            return candidate
        candidate.close()
    raise AssertionError("no connection reached the worker")


def test_a_linearizable_read_through_a_worker_fails_as_the_members_does_without_a_leader(tmp_path):
    """etcd 3.5.1 without a leader: a linearizable Range fails with UNAVAILABLE "etcdserver: request timed out"
    after the request timeout. Through a worker the same, in the same time: the read fails with its barrier's
    failure. Fails (about 12 to 14 s, not 7) if the worker relays such a read to the member, which then waits a
    second request timeout, or if an idle worker keeps a ReadIndex read in flight on the member (a read that
    arrives then waits for it to end before its own starts)."""
    members = start_cluster(etcdx_cluster(tmp_path, 3, extra_args=("--experimental-read-workers", "1")))
    survivor, *others = members
    try:
        wait_workers_ready(survivor, 1)
        (worker,) = children(survivor.pid)
        with channel_to_worker(survivor, worker) as through_worker:
            for member in others:
                member.kill9()
            time.sleep(2.5)  # past an election timeout: the survivor knows it has no leader
            began = time.monotonic()
            with pytest.raises(grpc.RpcError) as failed:
                rpc_pb2_grpc.KVStub(through_worker).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=30)
            took = time.monotonic() - began
        assert (failed.value.code(), failed.value.details()) == (
            grpc.StatusCode.UNAVAILABLE,
            "etcdserver: request timed out",
        )
        assert CLUSTER_REQUEST_TIMEOUT - 0.5 < took < CLUSTER_REQUEST_TIMEOUT + 3
    finally:
        stop_cluster(members)
    (stopped,) = log_lines(survivor, "read worker stopped")
    assert stopped["failed_with_barrier"] == 1, stopped


def test_a_followers_worker_never_answers_a_linearizable_read_from_a_stale_member(tmp_path):
    """A follower does not lead alone, so its worker serves a linearizable read only after a barrier through the
    follower: with the follower stopped (SIGSTOP; its worker runs) while the others go on writing, the read
    through its worker waits instead of answering the follower's old state. Fails if a worker serves linearizable
    reads from the mark alone, as it may for a member that leads alone."""
    members = start_cluster(etcdx_cluster(tmp_path, 3, extra_args=("--experimental-read-workers", "1")))
    try:
        leader = current_leader(members)
        assert leader is not None
        follower = next(m for m in members if m is not leader)
        wait_workers_ready(follower, 1)
        (worker,) = children(follower.pid)
        with channel(leader.endpoint) as to_leader, channel_to_worker(follower, worker) as through_worker:
            rpc_pb2_grpc.KVStub(to_leader).Put(rpc_pb2.PutRequest(key=b"s", value=b"old"), timeout=10)
            time.sleep(1.0)  # the follower applied and committed it: its mark and its worker's snapshot hold it
            os.kill(follower.pid, signal.SIGSTOP)
            try:
                rpc_pb2_grpc.KVStub(to_leader).Put(rpc_pb2.PutRequest(key=b"s", value=b"new"), timeout=10)
                try:
                    got = rpc_pb2_grpc.KVStub(through_worker).Range(rpc_pb2.RangeRequest(key=b"s"), timeout=2)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc
                else:
                    assert [kv.value for kv in got.kvs] == [b"new"], got
            finally:
                os.kill(follower.pid, signal.SIGCONT)
    finally:
        stop_cluster(members)


def _raw_range(target_channel: grpc.Channel, request: rpc_pb2.RangeRequest):
    call = target_channel.unary_unary(RANGE, request_serializer=None, response_deserializer=None)
    try:
        return call(request.SerializeToString(), timeout=10)
    except grpc.RpcError as exc:
        return ("error", exc.code(), exc.details())


def _requests(revision_mid: int, compacted: int) -> list[rpc_pb2.RangeRequest]:
    base = [
        rpc_pb2.RangeRequest(key=b"cmp/a"),
        rpc_pb2.RangeRequest(key=b"cmp/", range_end=b"cmp0"),
        rpc_pb2.RangeRequest(key=b"cmp/", range_end=b"cmp0", limit=3),
        rpc_pb2.RangeRequest(key=b"cmp/", range_end=b"cmp0", revision=revision_mid),
        rpc_pb2.RangeRequest(key=b"cmp/", range_end=b"cmp0", keys_only=True),
        rpc_pb2.RangeRequest(key=b"cmp/", range_end=b"cmp0", count_only=True),
        rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00", count_only=True, revision=revision_mid),
        rpc_pb2.RangeRequest(
            key=b"cmp/",
            range_end=b"cmp0",
            sort_target=rpc_pb2.RangeRequest.MOD,
            sort_order=rpc_pb2.RangeRequest.DESCEND,
        ),
        rpc_pb2.RangeRequest(key=b"cmp/", range_end=b"cmp0", sort_target=rpc_pb2.RangeRequest.VALUE, limit=2),
        rpc_pb2.RangeRequest(key=b"cmp/", range_end=b"cmp0", min_mod_revision=revision_mid),
        rpc_pb2.RangeRequest(key=b"cmp/a", revision=compacted - 1),  # compacted
        rpc_pb2.RangeRequest(key=b"cmp/a", revision=10**6),  # future revision
        rpc_pb2.RangeRequest(key=b""),  # no key
    ]
    both = []
    for request in base:
        serializable = rpc_pb2.RangeRequest()
        serializable.CopyFrom(request)
        serializable.serializable = True
        both += [request, serializable]
    return both


def test_answers_are_the_members_byte_for_byte(member):
    with channel(member.endpoint) as c:
        kv = rpc_pb2_grpc.KVStub(c)
        for i in range(12):
            kv.Put(rpc_pb2.PutRequest(key=b"cmp/%s" % b"abcdef"[i % 6 : i % 6 + 1], value=b"v%d" % (11 - i)))
        mid = kv.Range(rpc_pb2.RangeRequest(key=b"cmp/a")).header.revision - 4
        kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"cmp/b"))
        kv.Compact(rpc_pb2.CompactionRequest(revision=4))
        kv.Put(rpc_pb2.PutRequest(key=b"cmp/z", value=b"last"))
    time.sleep(0.5)  # past --backend-batch-interval: the serializable snapshots are the applied state
    requests = _requests(mid, 4)
    with channel(member_socket(member)) as private:
        expected = [_raw_range(private, r) for r in requests]
    assert expected[0] != expected[-1]
    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    try:
        for c in channels:
            assert [_raw_range(c, r) for r in requests] == expected
    finally:
        for c in channels:
            c.close()
    counts = stop_and_count(member)
    assert sum(line["local_ranges"] for line in counts) > 0, counts


def test_watch_lease_and_txn_through_every_connection(member):
    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    try:
        writer = rpc_pb2_grpc.KVStub(channels[0])
        for i, c in enumerate(channels):
            key = b"w/%d" % i
            requests = iter([rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key))])
            stream = rpc_pb2_grpc.WatchStub(c).Watch(_then_wait(requests), timeout=10)
            created = next(stream)
            assert created.created
            writer.Put(rpc_pb2.PutRequest(key=key, value=b"x"))
            event = next(stream)
            assert [(e.kv.key, e.kv.value) for e in event.events] == [(key, b"x")]
            stream.cancel()

            lease = rpc_pb2_grpc.LeaseStub(c)
            granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30), timeout=10)
            answers = lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=granted.ID)]), timeout=10)
            assert [a.ID for a in answers] == [granted.ID]

            txn = rpc_pb2_grpc.KVStub(c).Txn(
                rpc_pb2.TxnRequest(
                    compare=[rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.VALUE, value=b"x")],
                    success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"y", lease=granted.ID))],
                ),
                timeout=10,
            )
            assert txn.succeeded
    finally:
        for c in channels:
            c.close()


def _then_wait(requests):
    yield from requests
    time.sleep(5)  # keep the request side open while the test reads


def etcdctl(member: ServerProcess, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [ETCDCTL, "--endpoints", member.endpoint, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_etcdctl_through_any_connection(member):
    for i in range(8):  # each etcdctl run is a new connection
        assert etcdctl(member, "put", f"ctl/{i}", f"v{i}").strip() == "OK"
        assert etcdctl(member, "get", f"ctl/{i}", "--print-value-only").strip() == f"v{i}"
        assert etcdctl(member, "get", "ctl/", "--prefix", "--consistency=s", "--count-only", "-w", "fields")
        txn = etcdctl(member, "txn", stdin=f'value("ctl/{i}") = "v{i}"\n\nput ctl/{i} done\n\n\n')
        assert txn.splitlines()[0] == "SUCCESS"
        lease = etcdctl(member, "lease", "grant", "20").split()[1]
        assert "TTL" in etcdctl(member, "lease", "keep-alive", "--once", lease)
        assert "is healthy" in etcdctl(member, "endpoint", "health")
    health = subprocess.run(["curl", "-s", f"http://{member.endpoint}/health"], capture_output=True, text=True)
    assert json.loads(health.stdout)["health"] == "true"


def test_workers_do_not_keep_the_pages_their_index_followed_mapped(member):
    """A worker's index reads every new key row once; the pages it read leave the worker's RSS (each 16 MiB read),
    so the worker does not end up mapping the whole file. About 40 MiB of rows are written; a worker that kept
    every page it followed mapped holds more than that."""
    value = b"v" * 1000
    with channel(member.endpoint) as c:
        kv = rpc_pb2_grpc.KVStub(c)
        for batch in range(400):
            puts = [
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"big/%d/%d" % (batch, i), value=value))
                for i in range(100)
            ]
            kv.Txn(rpc_pb2.TxnRequest(success=puts), timeout=10)
    time.sleep(1.0)  # past --backend-batch-interval: committed, so the workers' reads follow every row
    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    try:
        for c in channels:
            got = rpc_pb2_grpc.KVStub(c).Range(rpc_pb2.RangeRequest(key=b"big/", range_end=b"big0", count_only=True))
            assert got.count == 40_000
    finally:
        for c in channels:
            c.close()
    data_file = os.path.join(member.data_dir, "member", "kv", "data.mdb")
    assert os.path.getsize(data_file) > 40 * 2**20
    mapped = {pid: mapped_kib(data_file, pid) / 1024 for pid in children(member.pid)}
    assert len(mapped) == WORKERS and all(mib < 25 for mib in mapped.values()), mapped


def test_killed_worker_is_restarted_and_stopping_stops_every_worker(member):
    workers = children(member.pid)
    assert len(workers) == WORKERS
    socket_file = member_socket(member).removeprefix("unix:")
    assert os.stat(socket_file).st_mode & 0o777 == 0o600
    time.sleep(12)  # past trio's idle thread timeout (a worker once took the SIGTERM of PR_SET_PDEATHSIG then)
    assert children(member.pid) == workers
    victim = sorted(workers)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(victim) and time.monotonic() < deadline:  # connections already queued on it are reset
        time.sleep(0.01)
    for i in range(20):  # fresh connections once it is gone, before its successor listens: the port serves
        with channel(member.endpoint) as c:
            rpc_pb2_grpc.KVStub(c).Put(rpc_pb2.PutRequest(key=b"k", value=b"%d" % i), timeout=10)
    wait_workers_ready(member, WORKERS + 1)
    now = children(member.pid)
    assert len(now) == WORKERS and victim not in now
    for _ in range(20):
        with channel(member.endpoint) as c:
            got = rpc_pb2_grpc.KVStub(c).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=10)
            assert got.kvs[0].value == b"19"
    member.stop()
    assert not os.path.exists(socket_file)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in now) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in now if alive(pid)]


def test_ranges_through_workers_obey_permissions(member):
    with channel(member.endpoint) as c:
        auth = rpc_pb2_grpc.AuthStub(c)
        kv = rpc_pb2_grpc.KVStub(c)
        kv.Put(rpc_pb2.PutRequest(key=b"open/1", value=b"o"))
        kv.Put(rpc_pb2.PutRequest(key=b"secret/1", value=b"s"))
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"))
        auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
        auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="reader"))
        auth.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(name="reader", perm=_perm(b"open/", b"open0")))
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="alice", password="alicepw"))
        auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="reader"))
        auth.AuthEnable(rpc_pb2.AuthEnableRequest())
        token = auth.Authenticate(rpc_pb2.AuthenticateRequest(name="alice", password="alicepw")).token
    md = (("token", token),)
    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    try:
        for c in channels:
            kv = rpc_pb2_grpc.KVStub(c)
            for serializable in (True, False):
                got = kv.Range(rpc_pb2.RangeRequest(key=b"open/1", serializable=serializable), metadata=md, timeout=10)
                assert got.kvs[0].value == b"o"
                with pytest.raises(grpc.RpcError) as denied:
                    kv.Range(rpc_pb2.RangeRequest(key=b"secret/1", serializable=serializable), metadata=md, timeout=10)
                assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
                with pytest.raises(grpc.RpcError) as nobody:
                    kv.Range(rpc_pb2.RangeRequest(key=b"open/1", serializable=serializable), timeout=10)
                assert nobody.value.details() == "etcdserver: user name is empty"
                # The name a worker forwards a verified client certificate's CN under is not the client's to set.
                with pytest.raises(grpc.RpcError) as claimed:
                    request = rpc_pb2.RangeRequest(key=b"secret/1", serializable=serializable)
                    kv.Range(request, metadata=(("etcdx-forwarded-client-cn", "root"),), timeout=10)
                assert claimed.value.details() == "etcdserver: user name is empty"
            with pytest.raises(grpc.RpcError) as claimed:
                kv.Put(rpc_pb2.PutRequest(key=b"open/1"), metadata=(("etcdx-forwarded-client-cn", "root"),), timeout=10)
            assert claimed.value.details() == "etcdserver: user name is empty"
    finally:
        for c in channels:
            c.close()
    counts = stop_and_count(member)
    assert sum(line["relayed_ranges"] for line in counts) > 0, counts


def test_auth_enabled_right_after_a_defragmentation_binds_every_worker_at_once(member):
    """A defragmentation swaps the file under the workers; AuthEnable right after it changes no revision, so the
    old file still reaches every barrier's revision. A worker that served from the old file until it noticed the
    swap (its idle check runs every second) would answer a Range without a token. Each connection was used
    before the swap, so each worker has the old file open."""
    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    try:
        setup = rpc_pb2_grpc.KVStub(channels[0])
        setup.Put(rpc_pb2.PutRequest(key=b"guarded/1", value=b"g"), timeout=10)
        for c in channels:
            rpc_pb2_grpc.KVStub(c).Range(rpc_pb2.RangeRequest(key=b"guarded/1"), timeout=10)
        auth = rpc_pb2_grpc.AuthStub(channels[0])
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"), timeout=10)
        auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
        rpc_pb2_grpc.MaintenanceStub(channels[0]).Defragment(rpc_pb2.DefragmentRequest(), timeout=30)
        auth.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)
        for i, c in enumerate(channels):
            for serializable in (False, True):
                with pytest.raises(grpc.RpcError) as nobody:
                    request = rpc_pb2.RangeRequest(key=b"guarded/1", serializable=serializable)
                    rpc_pb2_grpc.KVStub(c).Range(request, timeout=10)
                assert nobody.value.details() == "etcdserver: user name is empty", (i, serializable)
    finally:
        for c in channels:
            c.close()


def _perm(key: bytes, end: bytes):
    from etcdx.pb.authpb import auth_pb2

    return auth_pb2.Permission(permType=auth_pb2.Permission.READ, key=key, range_end=end)


def test_a_second_member_cannot_share_the_port(member, tmp_path):
    """SO_REUSEPORT lets processes of one user share a port: a second member with workers on the same client
    port must still fail to start rather than split the port's connections with the first."""
    (tmp_path / "b").mkdir()  # a short name: the workers' unix socket path must stay under 108 bytes
    other = etcdx_process(tmp_path / "b", extra_args=("--experimental-read-workers", "1"))
    other.argv = [a.replace(str(other.client_port), str(member.client_port)) for a in other.argv]
    other.launch()
    try:
        assert other.proc.wait(timeout=30) != 0
    finally:
        other.stop()
    with open(other.log_path) as f:
        assert "address already in use" in f.read().lower()


def test_flag_is_listed_and_read_from_every_source(tmp_path):
    usage = subprocess.run(
        ["python", "-m", "etcdx", "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert "--experimental-read-workers 'auto'" in usage
    assert parse_config([], {}).read_workers is None  # auto
    assert parse_config([], {"ETCD_EXPERIMENTAL_READ_WORKERS": "auto"}).read_workers is None
    assert parse_config(["--experimental-read-workers=0"], {}).read_workers == 0
    base = ["--experimental-read-workers", "2"]
    assert parse_config(base, {}).read_workers == 2
    assert parse_config([], {"ETCD_EXPERIMENTAL_READ_WORKERS": "3"}).read_workers == 3
    config_file = tmp_path / "etcd.yaml"
    config_file.write_text("experimental-read-workers: 4\n")
    assert parse_config(["--config-file", str(config_file)], {}).read_workers == 4
    secure = ["--listen-client-urls", "https://127.0.0.1:2379", "--advertise-client-urls", "https://127.0.0.1:2379"]
    assert parse_config([*base, *secure, "--auto-tls", "--client-cert-auth"], {}).read_workers == 2


def test_a_lock_given_up_through_a_worker_is_not_taken_later(member):
    """Lock waits until the lock is free. A client that gives up (cancels the call) must leave no waiter behind on
    the member, on any connection: workers send Lock as a member link stream, whose CANCEL the member sees, and
    it removes the waiter's key, as etcd does.

    The holder unlocks only once the member has had time to see every cancellation: a cancel that crosses the
    unlock on the wire may lose to it, and then that caller was granted the lock before it gave up, on etcd too."""
    from etcdx.pb.v3lockpb import v3lock_pb2, v3lock_pb2_grpc

    channels = [channel(member.endpoint) for _ in range(CONNECTIONS)]
    try:
        first = channels[0]
        kv = rpc_pb2_grpc.KVStub(first)

        def queued() -> int:
            return kv.Range(rpc_pb2.RangeRequest(key=b"L/", range_end=b"L0"), timeout=10).count

        lease = rpc_pb2_grpc.LeaseStub(first).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=10).ID
        held = v3lock_pb2_grpc.LockStub(first).Lock(v3lock_pb2.LockRequest(name=b"L", lease=lease), timeout=10)
        for c in channels[1:]:
            mine = rpc_pb2_grpc.LeaseStub(c).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=10).ID
            waiting = v3lock_pb2_grpc.LockStub(c).Lock.future(v3lock_pb2.LockRequest(name=b"L", lease=mine))
            time.sleep(0.2)
            assert not waiting.done()
            waiting.cancel()  # no deadline: only the cancellation tells the member
        deadline = time.monotonic() + 10
        while queued() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queued() == 1  # the holder's key alone: every waiter that gave up has left the queue
        v3lock_pb2_grpc.LockStub(first).Unlock(v3lock_pb2.UnlockRequest(key=held.key), timeout=10)
        time.sleep(1.0)  # a waiter left behind would take the lock now
        assert queued() == 0
    finally:
        for c in channels:
            c.close()


def test_by_default_a_member_runs_one_worker_per_core_beyond_its_own(tmp_path):
    """Without the flag a member serves from one process per core it may run on (on one core: the member alone);
    --experimental-read-workers 0 keeps it to one process, as etcd."""
    cores = len(os.sched_getaffinity(0))
    for extra, expected in (((), cores - 1), (("--experimental-read-workers", "0"), 0)):
        server = etcdx_process(tmp_path, extra_args=extra)
        server.start()
        try:
            wait_workers_ready(server, expected)
            assert len(children(server.pid)) == expected
            with channel(server.endpoint) as c:
                rpc_pb2_grpc.KVStub(c).Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), timeout=10)
        finally:
            server.stop()


def test_a_member_killed_with_its_workers_restarts_at_once_on_its_port(member):
    """kill -9 of the member: its workers stop at once (they watch its PID), so a supervisor that starts it again
    straight away finds the client port free and the data intact."""
    with channel(member.endpoint) as c:
        rpc_pb2_grpc.KVStub(c).Put(rpc_pb2.PutRequest(key=b"kept", value=b"v"), timeout=10)
    workers = children(member.pid)
    assert len(workers) == WORKERS
    member.kill9()
    member.start()
    try:
        assert not [pid for pid in workers if alive(pid)]
        wait_workers_ready(member, 2 * WORKERS)
        for _ in range(CONNECTIONS):
            with channel(member.endpoint) as c:
                got = rpc_pb2_grpc.KVStub(c).Range(rpc_pb2.RangeRequest(key=b"kept"), timeout=10)
                assert [kv.value for kv in got.kvs] == [b"v"]
    finally:
        member.stop()

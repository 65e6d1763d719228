"""Watch options that the differential workloads do not reach: progress, fragment, cancel replies."""

from __future__ import annotations

import time

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.compat.watch_client import RecordingWatch
from tests.support.procs import etcd_process, etcdx_process


def test_progress_notify_at_the_configured_interval(tmp_path):
    flags = ("--experimental-watch-progress-notify-interval", "500ms")
    with etcdx_process(tmp_path, extra_args=flags).start() as server:
        watch = RecordingWatch(server.endpoint)
        try:
            watch.create(rpc_pb2.WatchCreateRequest(key=b"quiet", progress_notify=True))
            watch.create(rpc_pb2.WatchCreateRequest(key=b"quiet2"))
            time.sleep(1.8)
            progress = [r for r in watch.responses if not r.created and not r.events]
            assert progress, "no progress notification"
            assert {r.watch_id for r in progress} == {0}  # only the watcher that asked
            assert all(r.header.revision == 1 and not r.canceled for r in progress)
        finally:
            watch.close()


def test_progress_request_cancel_and_unknown_cancel_match_etcd(tmp_path):
    def session(server) -> list:
        watch = RecordingWatch(server.endpoint)
        try:
            watch.create(rpc_pb2.WatchCreateRequest(key=b"a"))
            watch.create(rpc_pb2.WatchCreateRequest(key=b"b", range_end=b"a"))  # empty range
            watch.create(rpc_pb2.WatchCreateRequest(key=b"c", watch_id=7))
            watch.create(rpc_pb2.WatchCreateRequest(key=b"d", watch_id=7))  # duplicate id
            watch.send(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
            watch.send(rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=42)))
            watch.send(rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=7)))
            watch.wait_quiet(quiet=0.5)
            return [
                (r.watch_id, r.created, r.canceled, r.cancel_reason, r.header.revision, len(r.events))
                for r in watch.responses
            ]
        finally:
            watch.close()

    with etcd_process(tmp_path).start() as etcd, etcdx_process(tmp_path).start() as etcdx:
        assert session(etcdx) == session(etcd)


def test_fragmented_catch_up_response(tmp_path):
    """A catch-up batch larger than max-request-bytes + 512 KiB comes in fragments when asked for."""
    with etcdx_process(tmp_path, extra_args=("--max-request-bytes", "300000")).start() as server:
        channel = grpc.insecure_channel(server.endpoint)
        kv = rpc_pb2_grpc.KVStub(channel)
        first = None
        for i in range(5):
            response = kv.Put(rpc_pb2.PutRequest(key=b"big/%d" % i, value=bytes([65 + i]) * 250_000))
            first = first or response.header.revision
        watch = RecordingWatch(server.endpoint)
        try:
            create = rpc_pb2.WatchCreateRequest(key=b"big/", range_end=b"big0", start_revision=first, fragment=True)
            watch.create(create)
            watch.wait_quiet()
            parts = [r for r in watch.responses if r.events]
            assert len(parts) > 1
            assert [r.fragment for r in parts] == [True] * (len(parts) - 1) + [False]
            assert [e.kv.key for r in parts for e in r.events] == [b"big/%d" % i for i in range(5)]
        finally:
            watch.close()
            channel.close()


def test_watchers_created_during_writes_miss_nothing(etcdx_server):
    """A watcher created with start 0 while others write sees every write after its created revision."""
    import threading

    channel = grpc.insecure_channel(etcdx_server.endpoint)
    kv = rpc_pb2_grpc.KVStub(channel)
    stop = threading.Event()
    acked: dict[int, bytes] = {}

    def write() -> None:
        n = 0
        while not stop.is_set():
            response = kv.Put(rpc_pb2.PutRequest(key=b"race/k", value=b"%d" % n))
            acked[response.header.revision] = b"%d" % n
            n += 1

    writers = [threading.Thread(target=write) for _ in range(3)]
    for t in writers:
        t.start()
    watch = RecordingWatch(etcdx_server.endpoint)
    try:
        created = [watch.create(rpc_pb2.WatchCreateRequest(key=b"race/k")) for _ in range(60)]
        stop.set()
        for t in writers:
            t.join(timeout=30)
        watch.wait_quiet()
        last = max(acked)
        for reply in created:
            seen = [e.kv.mod_revision for r in watch.responses if r.watch_id == reply.watch_id for e in r.events]
            due = [rev for rev in sorted(acked) if reply.header.revision < rev <= last]
            assert seen == due, f"watch {reply.watch_id} created at {reply.header.revision}"
    finally:
        watch.close()
        channel.close()


def test_a_progress_request_is_answered_after_the_streams_catch_up(tmp_path):
    """etcd-io/etcd#15220, which etcd 3.5.1 has: a progress reply's revision tells the client it has every event up
    to that revision, so while a watcher of the stream still catches up from history, the reply waits until it
    has caught up (etcd 3.5.1 answers at once, ahead of the history: docs/differences.md)."""
    with etcdx_process(tmp_path, extra_args=("--experimental-read-workers", "0")).start() as server:
        with grpc.insecure_channel(server.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            revisions = [kv.Put(rpc_pb2.PutRequest(key=b"hist", value=b"%d" % n)).header.revision for n in range(2500)]
        watch = RecordingWatch(server.endpoint)
        try:
            create = rpc_pb2.WatchCreateRequest(key=b"hist", start_revision=1)
            watch.send(rpc_pb2.WatchRequest(create_request=create))
            watch.send(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
            progress = watch.wait_for(lambda r: r.watch_id == -1, 0, timeout=10)
            with watch._lock:
                before = watch.responses[: watch.responses.index(progress)]
            seen = [e.kv.mod_revision for r in before for e in r.events]
            assert progress.header.revision >= revisions[-1]
            assert seen == revisions, f"{len(seen)} of {len(revisions)} events came before the progress reply"
        finally:
            watch.close()

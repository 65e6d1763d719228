"""Watch requests handled in the connection's reader (api/grpc/watch.py, "Requests inline"), on the member's
HTTP/2 connections and through a read worker's member link: a reply never overtakes the responses queued
before it on its stream, never splits a message the stream is part way through sending, and is still sent
when it cannot go at once.

The client is a hand-driven HTTP/2 connection that acknowledges nothing while it is told to stall: the
server's connection window (65,535 bytes) is then used up by one stream's large events, part way through
one, while the other stream's sender is idle, which is exactly when a reply cannot go inline."""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.request

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import etcdx_process, wait_workers_ready

WATCH = "/etcdserverpb.Watch/Watch"
BIG = 30_000  # bytes per value: the third event of four is part way out when the window runs out
WORKERS = 2
PROGRESS_REQUESTS = 2000


class HandDrivenWatches:
    """Watch calls on one HTTP/2 connection whose received data is acknowledged only while reading."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config)
        self.h2.initiate_connection()
        self._flush()
        self.buffers: dict[int, bytearray] = {}
        self.responses: dict[int, list[rpc_pb2.WatchResponse]] = {}

    def open(self) -> int:
        sid = self.h2.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", WATCH),
            (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        self.h2.send_headers(sid, headers)
        self._flush()
        self.buffers[sid], self.responses[sid] = bytearray(), []
        return sid

    def send(self, sid: int, request: rpc_pb2.WatchRequest) -> None:
        message = request.SerializeToString()
        self.h2.send_data(sid, struct.pack(">BI", 0, len(message)) + message)
        self._flush()

    def read_until(self, done, timeout: float = 10.0) -> None:
        """Reads, acknowledging everything, until done() holds."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, {sid: [_brief(r) for r in rs] for sid, rs in self.responses.items()}
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    self._take(event.stream_id, event.data)
                elif isinstance(event, h2.events.StreamReset | h2.events.StreamEnded):
                    raise AssertionError(f"stream {event.stream_id} ended: {event}")
            self._flush()

    def _take(self, sid: int, data: bytes) -> None:
        buffer = self.buffers[sid]
        buffer += data
        while len(buffer) >= 5:
            flag, length = struct.unpack_from(">BI", buffer)
            assert flag == 0
            if len(buffer) < 5 + length:
                return
            self.responses[sid].append(rpc_pb2.WatchResponse.FromString(bytes(buffer[5 : 5 + length])))
            del buffer[: 5 + length]

    def _flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def close(self) -> None:
        self.sock.close()


def _brief(response: rpc_pb2.WatchResponse) -> tuple:
    return (response.watch_id, response.created, [e.kv.key for e in response.events], response.header.revision)


def _create(key: bytes, range_end: bytes = b"") -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key, range_end=range_end))


PROGRESS = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())


def stalled_replies_keep_their_place(port: int, kv: rpc_pb2_grpc.KVStub, run: int) -> None:
    """Stream ``big`` watches a prefix that gets four events of BIG bytes; stream ``small`` watches a quiet key.
    With the connection's window used up by ``big``'s events, each stream asks for progress and ``small``
    creates a second watcher. ``big``'s progress reply must follow its four events; ``small``'s replies must
    arrive, in order, although neither could go when it was made."""
    prefix = b"inline/%d/" % run
    client = HandDrivenWatches(port)
    try:
        big, small = client.open(), client.open()
        client.send(big, _create(prefix, prefix[:-1] + b"0"))
        client.send(small, _create(prefix + b"quiet"))
        client.read_until(lambda: client.responses[big] and client.responses[small])
        revisions = [
            kv.Put(rpc_pb2.PutRequest(key=prefix + b"%d" % i, value=b"v" * BIG)).header.revision for i in range(4)
        ]
        time.sleep(0.3)  # the server sends what the window allows, and not one byte is acknowledged
        client.send(big, PROGRESS)
        client.send(small, PROGRESS)
        client.send(small, _create(prefix + b"quiet2"))
        time.sleep(0.3)
        client.read_until(lambda: len(client.responses[big]) >= 6 and len(client.responses[small]) >= 3)
        got_big = [_brief(r) for r in client.responses[big]]
        assert [r[2] for r in got_big[1:5]] == [[prefix + b"%d" % i] for i in range(4)], got_big
        assert [r.mod_revision for r in (client.responses[big][i].events[0].kv for i in range(1, 5))] == revisions
        progress = client.responses[big][5]
        assert progress.watch_id == -1 and not progress.events and progress.header.revision >= revisions[-1], got_big
        got_small = [_brief(r) for r in client.responses[small]]
        assert [(r[0], r[1]) for r in got_small] == [(0, True), (-1, False), (1, True)], got_small
        assert len(client.responses[big]) == 6 and len(client.responses[small]) == 3
    finally:
        client.close()


@pytest.mark.parametrize(("workers", "connections"), [(0, 1), (WORKERS, 6)])
def test_replies_keep_their_place_behind_a_stalled_window(tmp_path, workers, connections):
    """Without workers, on the member's own connection; with two workers beside the member, on six connections,
    so that the chance that none is a worker's (relayed over the member link) is 3^-6."""
    server = etcdx_process(tmp_path, extra_args=("--experimental-read-workers", str(workers)))
    server.start()
    try:
        wait_workers_ready(server, workers)
        with grpc.insecure_channel(server.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            for run in range(connections):
                stalled_replies_keep_their_place(server.client_port, kv, run)
    finally:
        server.stop()


def test_a_progress_reply_follows_every_event_sent_before_it(tmp_path):
    """While one writer changes a watched key, progress requests arrive between events: each reply's revision
    says every event up to it was sent, so none of them may come after it. (The sender task holds an event it
    has taken from the queue for one pass of the scheduler: a reply made meanwhile must wait behind it.)"""
    server = etcdx_process(tmp_path, extra_args=("--experimental-read-workers", "0"))
    server.start()
    stop = threading.Event()
    try:
        with grpc.insecure_channel(server.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)

            def write() -> None:
                for n in range(20_000):
                    if stop.is_set():
                        return
                    kv.Put(rpc_pb2.PutRequest(key=b"busy", value=b"%d" % n))

            client = HandDrivenWatches(server.client_port)
            sid = client.open()
            client.send(sid, _create(b"busy"))
            client.read_until(lambda: client.responses[sid])
            writer = threading.Thread(target=write)
            writer.start()
            try:
                for _ in range(PROGRESS_REQUESTS):
                    seen = len(client.responses[sid])
                    client.send(sid, PROGRESS)
                    client.read_until(lambda seen=seen: any(r.watch_id == -1 for r in client.responses[sid][seen:]))
            finally:
                stop.set()
                writer.join(timeout=30)
            client.close()
        events = [r for r in client.responses[sid] if r.events]
        assert len(events) > 100, "the writes did not interleave with the progress requests"
        newest = 0
        for response in client.responses[sid][1:]:
            if response.watch_id == -1:
                newest = response.header.revision
            else:
                assert response.events[0].kv.mod_revision > newest, "an event came after a progress reply past it"
    finally:
        server.stop()


def _watch_gauges(port: int) -> tuple[float, float]:
    """(watch streams, watchers) from /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        values[name] = value
    return float(values["etcd_debugging_mvcc_watch_stream_total"]), float(values["etcd_debugging_mvcc_watcher_total"])


@pytest.mark.parametrize("last", ["cancel", "create"])
def test_a_stream_reset_in_the_same_write_as_its_last_request_ends(tmp_path, last):
    """clientv3 cancels a stream's last watcher and resets the stream at once: when the reader takes the request
    and answers it before it handles the reset, the answer meets a closed stream; the call must still end (its
    handler and sender gone, its watchers out of the hub), as a reset alone ends it."""
    server = etcdx_process(tmp_path, extra_args=("--experimental-read-workers", "0"))
    server.start()
    try:
        client = HandDrivenWatches(server.client_port)
        sid = client.open()
        client.send(sid, _create(b"quiet"))
        client.read_until(lambda: client.responses[sid])
        assert _watch_gauges(server.client_port) == (1, 1)
        if last == "cancel":
            request = rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=0))
        else:
            request = _create(b"quiet2")
        message = request.SerializeToString()
        client.h2.send_data(sid, struct.pack(">BI", 0, len(message)) + message)
        client.h2.reset_stream(sid)
        client._flush()  # one write: the request's DATA, then RST_STREAM
        deadline = time.monotonic() + 5
        while _watch_gauges(server.client_port) != (0, 0):
            assert time.monotonic() < deadline, _watch_gauges(server.client_port)
            time.sleep(0.05)
        client.close()
    finally:
        server.stop()

"""Watch at scale: server memory with 10,000 watchers on one stream and 1,000 streams, and put
throughput with and without a stalled watch stream (one that never reads).

Run: python bench/watch_scale.py [--etcd] — starts its own server (etcdx, or real etcd 3.5.1 with
--etcd, for comparison), prints the figures, stops the server. Not a test: the figures are for the
report; the watch tests prove correctness.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import h2.config
import h2.connection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from tests.compat.watch_client import RecordingWatch  # noqa: E402
from tests.support.procs import etcd_process, etcdx_process  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


def measured(server, label: str) -> float:
    """Puts/s and the server's CPU per put (which client contention on a shared box does not skew)."""
    before, start = cpu_seconds(server.pid), time.monotonic()
    rate = put_rate(server.endpoint)
    cpu = cpu_seconds(server.pid) - before
    puts = rate * (time.monotonic() - start)
    print(f"{label}: {rate:.0f} puts/s, server CPU {1e6 * cpu / max(puts, 1):.0f} us/put")
    return rate


def put_rate(endpoint: str, seconds: float = 3.0, threads: int = 8) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        channel = grpc.insecure_channel(endpoint)
        kv = rpc_pb2_grpc.KVStub(channel)
        while time.monotonic() < stop:
            kv.Put(rpc_pb2.PutRequest(key=b"hot/%d" % (done[i] % 100), value=b"x" * 100))
            done[i] += 1
        channel.close()

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / seconds


def stalled_watch(port: int) -> socket.socket:
    """An HTTP/2 client that opens a Watch on every key and then never reads its socket again."""
    sock = socket.create_connection(("127.0.0.1", port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(
        stream,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", f"127.0.0.1:{port}"),
            (":path", "/etcdserverpb.Watch/Watch"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
    )
    body = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"\x00", range_end=b"\x00"))
    data = body.SerializeToString()
    conn.send_data(stream, b"\x00" + len(data).to_bytes(4, "big") + data)
    sock.sendall(conn.data_to_send())
    return sock


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--etcd", action="store_true", help="measure real etcd 3.5.1 instead of etcdx")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    server = (etcd_process if args.etcd else etcdx_process)(tmp).start()
    try:
        endpoint = server.endpoint
        print(f"server: {'etcd 3.5.1' if args.etcd else 'etcdx'} pid {server.pid}")
        print(f"baseline RSS: {rss_mib(server.pid):.1f} MiB")
        base_rate = measured(server, "no watchers")

        stalled = stalled_watch(server.client_port)
        time.sleep(0.5)
        stalled_rate = measured(server, "a stalled watch stream on every key")
        print(f"ratio stalled / none: {stalled_rate / base_rate:.2f}")
        print(f"RSS with the stalled stream after the load: {rss_mib(server.pid):.1f} MiB")

        one = RecordingWatch(endpoint)
        for i in range(10_000):
            one.send(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"k/%05d" % i)))
        one.wait_for(lambda r: r.created and r.watch_id == 9_999, 0, timeout=120)
        print(f"RSS with 10,000 watchers on one stream: {rss_mib(server.pid):.1f} MiB")

        streams = []
        for i in range(1_000):
            w = RecordingWatch(endpoint) if i % 100 == 0 else None
            streams.append(w)
        channel = grpc.insecure_channel(endpoint)
        calls = []
        for i in range(1_000):
            request = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"s/%04d" % i))
            calls.append(rpc_pb2_grpc.WatchStub(channel).Watch(iter([request])))
        for call in calls:
            next(call)
        print(f"RSS with 1,000 more streams (one watcher each): {rss_mib(server.pid):.1f} MiB")
        measured(server, "all of them open")
        print(f"RSS after: {rss_mib(server.pid):.1f} MiB")
        for call in calls:
            call.cancel()
        one.close()
        for w in streams:
            if w is not None:
                w.close()
        stalled.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()

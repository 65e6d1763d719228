"""Replies sent without the writer task's turn (GrpcConnection._flush_now, flush_deferred_replies) keep the byte
stream whole when the socket takes only part of them: a client that reads nothing while a batch of replies is
written gets every reply complete once it reads (the writer sends what the socket did not take). Inline replies
(serializable ranges, flushed by the reader) and deferred ones (linearizable ranges, flushed by the Ready loop)
both. Checked by planting the bug: dropping the remainder fails both cases."""

from __future__ import annotations

import struct
import time

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.h2_attacks import MAX_WINDOW, RawH2, h2codec
from tests.support.procs import etcdx_process

VALUE = bytes(range(256)) * 58  # 14.5 KiB, not one repeated byte: a lost or misplaced chunk shows
# Each reply fits one HTTP/2 frame (so it takes the one-piece path that is flushed at once; larger ones are sent
# by the writer), and the 15 of them are made in one batch (under the reader's DISPATCH_BATCH of 16 and the
# connection's OUTPUT_HIGH_WATER): 220 KiB in one write, far over what a client socket buffer of 8 KiB takes.
REQUESTS = 15


@pytest.fixture
def member(tmp_path):
    with etcdx_process(tmp_path).start() as server:
        yield server


@pytest.mark.parametrize("serializable", [True, False], ids=["inline-reader-flush", "deferred-ready-loop-flush"])
def test_replies_larger_than_the_socket_arrive_whole_and_in_order(member, serializable):
    with grpc.insecure_channel(member.endpoint) as channel:
        rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"big", value=VALUE), timeout=10)
    conn = RawH2(member.endpoint, window=MAX_WINDOW, rcvbuf=8192)
    try:
        frames = b""
        streams = [1 + 2 * n for n in range(REQUESTS)]
        request = rpc_pb2.RangeRequest(key=b"big", serializable=serializable).SerializeToString()
        for stream_id in streams:
            frames += conn.request_headers(stream_id, "/etcdserverpb.KV/Range") + conn.message(stream_id, request)
        assert conn.send(frames)
        time.sleep(1.0)  # the server answers all while the client reads nothing: its socket takes part
        bodies = {stream_id: b"" for stream_id in streams}
        ended: set[int] = set()
        deadline = time.monotonic() + 20
        while len(ended) < REQUESTS and time.monotonic() < deadline:
            got = conn.frames(0.5)
            assert got is not None, "the server closed the connection"
            for frame_type, flags, stream_id, payload in got:
                if frame_type == h2codec.DATA:
                    bodies[stream_id] += payload
                elif frame_type == h2codec.HEADERS and flags & h2codec.FLAG_END_STREAM:
                    ended.add(stream_id)
                elif frame_type in (h2codec.RST_STREAM, h2codec.GOAWAY):
                    pytest.fail(f"stream {stream_id} got frame type {frame_type}")
        assert ended == set(streams)
        for stream_id, body in bodies.items():
            compressed, length = struct.unpack_from(">BI", body)
            assert (compressed, length) == (0, len(body) - 5), stream_id
            response = rpc_pb2.RangeResponse.FromString(body[5:])
            assert [kv.value for kv in response.kvs] == [VALUE], stream_id
    finally:
        conn.close()

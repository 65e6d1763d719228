"""The HTTP/2 driver's bounds (etcdx.net.http2): stream ceiling and header budget (REFUSED_STREAM), header
blocks split into too many frames, rapid reset and grpc-go's ping policy (GOAWAY ENHANCE_YOUR_CALM), and the
output count the I/O shell throttles on. Frames are made by hand; the clock is a variable the test moves."""

from __future__ import annotations

import hpack
import pytest

from etcdx.net import http2
from etcdx.net.token_bucket import TokenBucket
from tests.unit.test_http2_driver import (
    ACK,
    CONTINUATION,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PING,
    REFUSED_STREAM,
    REQUEST,
    RST_STREAM,
    SETTINGS,
    connection_error,
    frame,
    frames_of,
    goaway,
    header_block,
    raw_server,
    request_frame,
    resets,
)

ENHANCE_YOUR_CALM = 0xB
CANCEL = 0x8


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings_sent(server: http2.ServerConnection) -> dict[int, int]:
    [(_, _, _, payload)] = [f for f in frames_of(server.bytes_to_send()) if f[0] == SETTINGS and not f[1] & ACK]
    return {
        int.from_bytes(payload[i : i + 2], "big"): int.from_bytes(payload[i + 2 : i + 6], "big")
        for i in range(0, len(payload), 6)
    }


def test_the_stream_limit_is_advertised_and_capped_by_the_ceiling():
    assert settings_sent(http2.server_connection(2**32 - 1))[3] == http2.STREAM_CEILING
    assert settings_sent(http2.server_connection(7))[3] == 7


def test_streams_beyond_the_limit_are_refused_and_the_application_never_hears_of_them():
    server = raw_server(http2.server_connection(2))
    encoder = hpack.Encoder()
    events = server.receive(b"".join(request_frame(sid, encoder=encoder) for sid in (1, 3, 5)))
    assert [e.stream_id for e in events if isinstance(e, http2.RequestHeaders)] == [1, 3]
    assert resets(server) == {5: REFUSED_STREAM}
    server.reset(1)  # a stream ends: room for one more
    server.bytes_to_send()
    events = server.receive(request_frame(7, encoder=encoder))
    assert [e.stream_id for e in events if isinstance(e, http2.RequestHeaders)] == [7]


def test_open_streams_share_a_header_budget():
    server = raw_server(http2.server_connection(header_budget=3000))
    headers = [*REQUEST, ("x-big", "b" * 900)]
    encoder = hpack.Encoder()
    events = server.receive(b"".join(request_frame(sid, headers=headers, encoder=encoder) for sid in (1, 3, 5, 7)))
    opened = [e.stream_id for e in events if isinstance(e, http2.RequestHeaders)]
    assert opened == [1, 3]  # each list is about 1,100 bytes as SETTINGS_MAX_HEADER_LIST_SIZE counts
    assert resets(server) == {5: REFUSED_STREAM, 7: REFUSED_STREAM}
    server.receive(frame(RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big")))  # budget given back
    events = server.receive(request_frame(9, headers=headers, encoder=encoder))
    assert [e.stream_id for e in events if isinstance(e, http2.RequestHeaders)] == [9]


def test_a_header_block_in_too_many_frames_is_enhance_your_calm():
    server = raw_server()
    block = header_block(REQUEST)
    head = frame(HEADERS, 0, 1, block)
    empty = frame(CONTINUATION, 0, 1, b"") * (http2.MAX_HEADER_BLOCK_FRAMES - 1)
    server.receive(head + empty)  # 128 frames so far: still allowed
    error = connection_error(server, frame(CONTINUATION, 0, 1, b""), ENHANCE_YOUR_CALM)
    assert "more than 128 frames" in str(error)


def test_a_header_block_at_the_frame_limit_is_accepted():
    server = raw_server()
    block = header_block(REQUEST)
    parts = [block[:1], *([b""] * (http2.MAX_HEADER_BLOCK_FRAMES - 2)), block[1:]]
    data = frame(HEADERS, END_STREAM, 1, parts[0])
    data += b"".join(frame(CONTINUATION, 0, 1, p) for p in parts[1:-1])
    data += frame(CONTINUATION, END_HEADERS, 1, parts[-1])
    events = server.receive(data)
    assert isinstance(events[0], http2.RequestHeaders) and events[0].end_stream


def test_an_hpack_bomb_stops_at_the_header_list_limit():
    server = raw_server()
    seed = hpack.Encoder().encode([*REQUEST, ("x-bomb", "b" * 4000)])  # the encoder indexes x-bomb
    server.receive(frame(HEADERS, END_HEADERS, 1, seed))
    bomb = b"\xbe" * 300  # 300 x 4 KB decoded, from 300 bytes
    error = connection_error(server, frame(HEADERS, END_HEADERS, 3, bomb), 0x9)
    assert "header list larger than" in str(error)


def rapid_reset(server: http2.ServerConnection, encoder: hpack.Encoder, first: int, count: int) -> None:
    for sid in range(first, first + 2 * count, 2):
        server.receive(request_frame(sid, end_stream=True, encoder=encoder) + frame(RST_STREAM, 0, sid, bytes(4)))


def test_resets_beyond_the_burst_and_rate_are_enhance_your_calm():
    clock = Clock()
    server = raw_server(http2.server_connection(clock=clock))
    encoder = hpack.Encoder()
    rapid_reset(server, encoder, 1, http2.RESET_BURST)  # the burst
    clock.now += 1.0  # refills RESET_RATE tokens
    rapid_reset(server, encoder, 1 + 2 * http2.RESET_BURST, int(http2.RESET_RATE))
    server.bytes_to_send()
    sid = 1 + 2 * (http2.RESET_BURST + int(http2.RESET_RATE))
    with pytest.raises(http2.ProtocolError) as info:
        rapid_reset(server, encoder, sid, 1)
    assert info.value.error_code == ENHANCE_YOUR_CALM
    assert goaway(server.bytes_to_send()) == (sid, ENHANCE_YOUR_CALM)


def test_resets_of_streams_the_server_already_ended_cost_nothing():
    clock = Clock()
    server = raw_server(http2.server_connection(clock=clock))
    encoder = hpack.Encoder()
    for sid in range(1, 2 * (http2.RESET_BURST + 10), 2):
        server.receive(request_frame(sid, end_stream=True, encoder=encoder))
        server.send_headers(sid, [(b":status", b"200")], end_stream=True)
        server.receive(frame(RST_STREAM, 0, sid, bytes(4)))


def ping(server: http2.ServerConnection) -> bytes:
    server.receive(frame(PING, 0, 0, b"12345678"))
    return server.bytes_to_send()


def test_pings_sooner_than_the_min_time_are_strikes_and_the_third_strike_ends_the_connection():
    clock = Clock()
    server = raw_server(http2.server_connection(ping_min_time=5.0, clock=clock))
    server.receive(request_frame(1, encoder=hpack.Encoder()))  # an active stream: the min time applies
    ping(server)  # the first ping is never a strike
    for _ in range(2):
        clock.now += 1.0
        assert frames_of(ping(server))[0][:2] == (PING, ACK)  # answered; a strike
    clock.now += 1.0
    with pytest.raises(http2.ProtocolError) as info:
        server.receive(frame(PING, 0, 0, b"12345678"))
    assert info.value.error_code == ENHANCE_YOUR_CALM and str(info.value) == "too_many_pings"
    [goaway_frame] = [f for f in frames_of(server.bytes_to_send()) if f[0] == 7]
    assert goaway_frame[3][8:] == b"too_many_pings"


def test_pings_at_the_min_time_or_after_data_was_sent_are_no_strikes():
    clock = Clock()
    server = raw_server(http2.server_connection(ping_min_time=5.0, clock=clock))
    server.receive(request_frame(1, encoder=hpack.Encoder()))
    for _ in range(10):
        clock.now += 5.0
        ping(server)
    for _ in range(10):  # too soon, but the server sent something since each ping
        clock.now += 0.1
        server.send_headers(1, [(b":status", b"200")])
        ping(server)


def test_without_streams_pings_more_often_than_every_two_hours_are_strikes():
    clock = Clock()
    server = raw_server(http2.server_connection(ping_min_time=5.0, clock=clock))
    ping(server)
    for _ in range(2):
        clock.now += 60.0
        ping(server)
    clock.now += 60.0
    connection_error(server, frame(PING, 0, 0, b"12345678"), ENHANCE_YOUR_CALM)


def test_queued_bytes_counts_output_until_taken():
    server = raw_server()
    assert server.queued_bytes == 0
    server.receive(frame(SETTINGS, 0, 0) * 10)
    assert server.queued_bytes == 90  # ten SETTINGS ACKs
    server.ping(b"abcdefgh")
    assert server.queued_bytes == 90 + 17
    assert len(server.bytes_to_send()) == 107 and server.queued_bytes == 0


def test_a_shared_reset_bucket_limits_connections_together():
    clock = Clock()
    shared = TokenBucket(3, 1.0, clock)
    first = raw_server(http2.server_connection(clock=clock, shared_resets=shared))
    second = raw_server(http2.server_connection(clock=clock, shared_resets=shared))
    rapid_reset(first, hpack.Encoder(), 1, 2)
    encoder = hpack.Encoder()
    rapid_reset(second, encoder, 1, 1)  # the third reset of the pair: the shared burst is spent
    second.bytes_to_send()
    with pytest.raises(http2.ProtocolError) as info:
        rapid_reset(second, encoder, 3, 1)
    assert info.value.error_code == ENHANCE_YOUR_CALM
    clock.now += 1.0  # one token back
    rapid_reset(first, hpack.Encoder(), 5, 1)


def test_a_token_bucket_refills_at_its_rate_up_to_its_burst_and_never_from_a_clock_gone_back():
    clock = Clock()
    bucket = TokenBucket(2, 10.0, clock)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 0.1
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.now += 100.0
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now -= 50.0  # another event loop's clock
    assert not bucket.take()

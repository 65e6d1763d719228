"""The HTTP/2 connection driver, compiled (_h2conn) and twin (h2conn_py), held against each other: for any sequence
of client bytes (well-formed requests, and frames of every type with random flags, stream ids and payloads, split at
random points) and server calls (acknowledge, responses, data, headers, resets, pings, close), both produce the same
events, the same bytes to send, the same errors (type, text and GOAWAY code) and the same observable state. The
driver's own rules are tested in test_http2_driver.py and test_http2_bounds.py, on whichever one is loaded.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcdx._native import h2codec_py as codec
from etcdx.net.token_bucket import TokenBucket
from tests.support.native_pair import compiled_and_twin

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/etcdserverpb.KV/Range"),
    (b":authority", b"127.0.0.1"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]
FRAME_TYPES = [
    codec.DATA,
    codec.HEADERS,
    codec.PRIORITY,
    codec.RST_STREAM,
    codec.SETTINGS,
    codec.PUSH_PROMISE,
    codec.PING,
    codec.GOAWAY,
    codec.WINDOW_UPDATE,
    codec.CONTINUATION,
    0xA,
]


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return codec.encode_frame(frame_type, flags, stream_id, payload)


stream_ids = st.sampled_from([0, 1, 2, 3, 5, 7, 9, 11, 2**31 - 1])
open_ids = st.sampled_from([1, 3, 5, 7, 9])  # the ids requests open, in any order
payloads = st.binary(max_size=24) | st.sampled_from(
    [
        b"\x00" * 4,
        b"\x00\x00\x00\x01",
        b"\x7f\xff\xff\xff",
        b"\x00" * 8,
        b"\x00\x04\x00\x00\xff\xff",
        b"\x00\x05\x00\x00\x40\x00",
    ]
)


@st.composite
def requests(draw):
    """A request's HEADERS (with or without END_STREAM, sometimes split into CONTINUATION) and maybe a DATA frame."""
    stream_id = draw(open_ids)
    headers = list(REQUEST)
    if draw(st.booleans()):
        headers.append((b"grpc-timeout", draw(st.sampled_from([b"5S", b"100m", b"x"]))))
    if draw(st.booleans()):
        headers[0] = (b":method", b"GET")
    block = codec.HpackEncoder().encode(headers)  # no dynamic table: every block decodes on its own
    end_stream = draw(st.booleans())
    flags = codec.FLAG_END_STREAM if end_stream else 0
    if draw(st.booleans()) and len(block) > 2:
        cut = draw(st.integers(1, len(block) - 1))
        data = frame(codec.HEADERS, flags, stream_id, block[:cut]) + frame(
            codec.CONTINUATION, codec.FLAG_END_HEADERS, stream_id, block[cut:]
        )
    else:
        data = frame(codec.HEADERS, flags | codec.FLAG_END_HEADERS, stream_id, block)
    if not end_stream and draw(st.booleans()):
        body = draw(st.binary(max_size=40))
        data += frame(
            codec.DATA,
            codec.FLAG_END_STREAM if draw(st.booleans()) else 0,
            stream_id,
            b"\0" + len(body).to_bytes(4, "big") + body,
        )
    return ("receive", data)


any_frames = st.builds(
    lambda t, f, s, p: ("receive", frame(t, f, s, p)),
    st.sampled_from(FRAME_TYPES),
    st.integers(0, 255),
    stream_ids,
    payloads,
)
server_calls = st.one_of(
    st.tuples(st.just("acknowledge"), open_ids, st.integers(0, 70000)),
    st.tuples(st.just("send_response"), open_ids, st.binary(max_size=30)),
    st.tuples(st.just("send_data"), open_ids, st.binary(max_size=30), st.booleans()),
    st.tuples(st.just("send_headers"), open_ids, st.booleans()),
    st.tuples(st.just("reset"), open_ids, st.integers(0, 13) | st.just(2**32 - 1)),
    st.tuples(st.just("send_window"), open_ids),
    st.tuples(st.just("ping")),
    st.tuples(st.just("close")),
)
steps = st.lists(st.one_of(requests(), requests(), server_calls, server_calls, any_frames), max_size=14)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(codec.SETTINGS, 0, 0, b"")


def new_connection(module):
    clock = Clock()
    return module.ServerConnection(7, 5.0, clock, TokenBucket(3, 1.0, clock), TokenBucket(5, 1.0, clock), 4096)


def outcome(connection, step, split):
    """What one step does to ``connection``: its result or error, then the bytes and state it leaves."""
    name, *args = step
    try:
        if name == "receive":
            (data,) = args
            result = connection.receive(data[:split]) + connection.receive(data[split:])
        elif name == "send_response":
            stream_id, body = args
            result = connection.send_response(stream_id, RESPONSE, len(body).to_bytes(5, "big"), body, TRAILERS)
        elif name == "send_headers":
            stream_id, end_stream = args
            result = connection.send_headers(stream_id, TRAILERS, end_stream)
        elif name == "ping":
            result = connection.ping(b"12345678")
        else:
            result = getattr(connection, name)(*args)
    except Exception as exc:  # noqa: BLE001 - the error is what is compared
        result = (type(exc), str(exc), getattr(exc, "error_code", None))
    return result, connection.queued_bytes, connection.bytes_to_send(), connection.max_frame_size


def first_difference(steps, splits):
    """The first step after which the compiled and the twin driver differ, with both outcomes; None if none does."""
    compiled, twin = compiled_and_twin("h2conn")
    connections = [new_connection(compiled), new_connection(twin)]
    for step, split in zip([("receive", PREFACE), *steps], [0, *splits], strict=True):
        got_compiled, got_twin = (outcome(connection, step, split) for connection in connections)
        if got_compiled != got_twin:
            return step, got_compiled, got_twin
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, splits=st.lists(st.integers(0, 40), min_size=14, max_size=14))
def test_compiled_and_twin_drivers_answer_alike(steps, splits):
    assert first_difference(steps, splits[: len(steps)]) is None


REQUEST_ON_1 = ("receive", frame(codec.HEADERS, codec.FLAG_END_HEADERS, 1, codec.HpackEncoder().encode(REQUEST)))


@pytest.mark.parametrize(
    ("planted", "steps"),
    [
        (
            (
                "_rst_stream",
                lambda stream_id, code: frame(codec.RST_STREAM, 0, stream_id, (code + 1).to_bytes(4, "big")),
            ),
            [REQUEST_ON_1, ("reset", 1, 8)],
        ),
        (("_goaway", lambda last, code, debug: frame(codec.GOAWAY, 0, 0, bytes(8))), [REQUEST_ON_1, ("close",)]),
    ],
    ids=["reset code", "goaway last stream"],
)
def test_the_comparison_sees_a_planted_difference(monkeypatch, planted, steps):
    """The comparison sees what it claims to: a twin that resets with another code, or names another last stream in
    its GOAWAY, differs."""
    assert first_difference(steps, [0] * len(steps)) is None
    _, twin = compiled_and_twin("h2conn")
    monkeypatch.setattr(twin, *planted)
    assert first_difference(steps, [0] * len(steps)) is not None

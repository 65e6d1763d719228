"""The member link's frames (etcdx/worker/link_frames.py): what one side encodes, the other decodes, whatever
the reads cut; a frame over the limit or malformed is refused."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcdx.worker.link_frames import (
    ANSWER,
    CALL,
    CANCEL,
    CREDIT,
    END,
    HALF_CLOSE,
    MESSAGE,
    NO_TIMEOUT,
    OPEN,
    LinkError,
    decode_credit,
    decode_message,
    decode_request,
    decode_response,
    decode_signal,
    encode_credit,
    encode_message,
    encode_request,
    encode_response,
    encode_signal,
    kind,
    take_frames,
)

texts = st.text(max_size=40)


@given(
    call_id=st.integers(0, 2**32 - 1),
    timeout_ms=st.integers(0, NO_TIMEOUT),
    path=texts,
    metadata=st.dictionaries(texts, texts, max_size=5),
    message=st.binary(max_size=200),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_a_request_survives_any_cut_of_the_stream(call_id, timeout_ms, path, metadata, message, cuts):
    frame = encode_request(call_id, timeout_ms, path, metadata, message)
    stream = frame + encode_response(7, 0, b"ok")
    buffer = bytearray()
    bodies = []
    start = 0
    for cut in sorted({min(c, len(stream)) for c in cuts} | {len(stream)}):
        buffer += stream[start:cut]
        start = cut
        bodies += take_frames(buffer, 10_000)
    assert not buffer
    assert decode_request(bodies[0]) == (call_id, timeout_ms, path, metadata, message)
    assert decode_response(bodies[1]) == (7, 0, b"ok")


def test_a_response_carries_a_status_text():
    (body,) = take_frames(bytearray(encode_response(3, 9, b"etcdserver: no leader")), 100)
    assert decode_response(body) == (3, 9, b"etcdserver: no leader")


def test_a_frame_over_the_limit_is_refused_before_it_arrives():
    head = encode_request(1, NO_TIMEOUT, "/p", {}, b"x" * 100)[:10]  # only the start has arrived
    with pytest.raises(LinkError):
        take_frames(bytearray(head), 50)


def test_a_partial_frame_stays_in_the_buffer():
    frame = encode_response(1, 0, b"abc")
    buffer = bytearray(frame[:-1])
    assert take_frames(buffer, 100) == []
    assert buffer == frame[:-1]


@pytest.mark.parametrize(
    "body",
    [
        b"\x01\x00",  # shorter than a request's fixed part
        encode_request(1, 0, "/p", {"k": "v"}, b"")[4:-3],  # metadata cut short
        struct.pack("<BIIHI", CALL, 1, 0, 5, 0) + b"ab",  # a path of 5 bytes in a body that has 2
        encode_request(1, 0, "/\udc80"[:1], {}, b"")[4:-1] + b"\xff",  # path not UTF-8
    ],
)
def test_a_malformed_request_is_refused(body):
    with pytest.raises(LinkError):
        decode_request(body)


@given(call_id=st.integers(0, 2**32 - 1), message=st.binary(max_size=200), size=st.integers(0, 2**32 - 1))
def test_every_stream_frame_decodes_to_what_was_encoded(call_id, message, size):
    frames = (
        encode_request(call_id, 5, "/p", {"a": "b"}, b"", OPEN)
        + encode_message(call_id, message)
        + encode_signal(HALF_CLOSE, call_id)
        + encode_signal(CANCEL, call_id)
        + encode_credit(call_id, size)
        + encode_response(call_id, 2, b"boom", END)
        + encode_response(call_id, 0, message)
    )
    bodies = take_frames(bytearray(frames), 10_000)
    assert [kind(body) for body in bodies] == [OPEN, MESSAGE, HALF_CLOSE, CANCEL, CREDIT, END, ANSWER]
    assert decode_request(bodies[0]) == (call_id, 5, "/p", {"a": "b"}, b"")
    assert decode_message(bodies[1]) == (call_id, message)
    assert decode_signal(bodies[2]) == decode_signal(bodies[3]) == call_id
    assert decode_credit(bodies[4]) == (call_id, size)
    assert decode_response(bodies[5]) == (call_id, 2, b"boom")
    assert decode_response(bodies[6]) == (call_id, 0, message)


@pytest.mark.parametrize(
    ("decoder", "body"),
    [
        (kind, b""),
        (decode_message, bytes([MESSAGE, 1, 0])),
        (decode_signal, bytes([CANCEL, 1, 0, 0, 0, 0])),
        (decode_credit, bytes([CREDIT, 1, 0, 0, 0, 1, 0])),
        (decode_response, bytes([END, 1, 0, 0, 0, 0])),
    ],
)
def test_a_malformed_stream_frame_is_refused(decoder, body):
    with pytest.raises(LinkError):
        decoder(body)

"""Peer frames of one Raft message (etcdx/_native/_peerframe.pyx and its twin peerframe_py.py), held against
protobuf's path (etcdx/peer/codec.py: PeerFrame, message_to_pb, decode_frame, message_from_pb):

- encoding gives protobuf's bytes for any message without a snapshot;
- decoding gives back the envelope and the message;
- for any payload (valid frames, their mutations, concatenations, which protobuf merges, and random bytes),
  decoding returns None or exactly what protobuf's path gives, and the compiled module and the twin return the
  same.

Planted bugs (a decoder that lets a repeated message field replace the first instead of merging, one that reads
MessageType numbers in another order) fail the comparison.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx._native import peerframe_py
from etcdx._native.protowire import varint
from etcdx.peer import codec
from etcdx.raft.messages import Entry, EntryType, Message, MessageType
from tests.support.native_pair import compiled_and_twin

u64 = st.integers(0, (1 << 64) - 1)
small_or_big = st.one_of(st.integers(0, 300), u64)
entries = st.builds(Entry, small_or_big, small_or_big, st.sampled_from(list(EntryType)), st.binary(max_size=40))
messages = st.builds(
    Message,
    type=st.sampled_from(list(MessageType)),
    to=small_or_big,
    sender=small_or_big,
    term=small_or_big,
    log_term=small_or_big,
    index=small_or_big,
    entries=st.lists(entries, max_size=4).map(tuple),
    commit=small_or_big,
    reject=st.booleans(),
    reject_hint=small_or_big,
    context=st.binary(max_size=16),
)


@pytest.fixture(scope="module")
def modules():
    return compiled_and_twin("peerframe")


def protobufs_answer(payload: bytes):
    """What codec.py's protobuf path makes of ``payload``: (envelope, Message) for a message body without a
    snapshot; otherwise "other" (another body, a snapshot) or "refused" (CodecError)."""
    try:
        frame = codec.decode_frame(payload)
        if frame.WhichOneof("body") != "message" or frame.message.has_snapshot:
            return "other"
        return frame.cluster_id, frame.sender, frame.receiver, codec.message_from_pb(frame.message)
    except codec.CodecError:
        return "refused"


def agrees(module, payload: bytes) -> bool:
    """Whether ``module`` decodes ``payload`` as None or as protobuf's path does."""
    ours = module.decode_message_frame(payload)
    return ours is None or ours == protobufs_answer(payload)


@given(cluster_id=small_or_big, sender=small_or_big, receiver=small_or_big, m=messages)
@settings(max_examples=300)
def test_encoding_is_protobufs_and_decodes_back(modules, cluster_id, sender, receiver, m):
    expected = codec.message_frame(cluster_id, sender, receiver, m)
    for module in modules:
        frame = module.encode_message_frame(cluster_id, sender, receiver, m)
        assert frame == expected
        assert module.decode_message_frame(frame[4:]) == (cluster_id, sender, receiver, m)


def mutations(payload: bytes) -> st.SearchStrategy[bytes]:
    at = st.integers(0, max(0, len(payload) - 1))
    return st.one_of(
        st.builds(lambda i, b: payload[:i] + bytes([b]) + payload[i + 1 :], at, st.integers(0, 255)),
        st.builds(lambda i: payload[:i], at),
        st.builds(lambda i, extra: payload[:i] + extra + payload[i:], at, st.binary(min_size=1, max_size=6)),
    )


@given(data=st.data(), first=messages, second=messages)
@settings(max_examples=400)
def test_any_payload_decodes_as_protobufs_or_not_at_all(modules, data, first, second):
    one = codec.message_frame(1, first.sender, first.to, first)[4:]
    two = codec.message_frame(2, second.sender, second.to, second)[4:]
    payload = data.draw(
        st.one_of(
            st.just(one),
            mutations(one),
            st.just(one + two),  # protobuf merges the two messages: not a frame read here
            st.binary(max_size=64),
        )
    )
    compiled, twin = modules
    assert compiled.decode_message_frame(payload) == twin.decode_message_frame(payload)
    assert agrees(twin, payload)


NOT_READ_HERE = {
    "has_snapshot": b"\x22\x04\x08\x08\x48\x01",
    "has_snapshot false, written": b"\x22\x04\x08\x08\x48\x00",
    "unknown message field": b"\x22\x04\x08\x08\x70\x01",
    "unknown frame field": b"\x22\x02\x08\x08\x28\x01",
    "fields out of order": b"\x22\x04\x10\x02\x08\x08",
    "a field twice": b"\x22\x04\x08\x08\x08\x09",
    "an envelope field twice": b"\x08\x01\x08\x02\x22\x00",
    "reject of 2": b"\x22\x04\x08\x08\x58\x02",
    "message type 19": b"\x22\x02\x08\x13",
    "entry type 2": b"\x22\x06\x08\x08\x3a\x02\x18\x02",
    "varint past 64 bits": b"\x08" + b"\xff" * 9 + b"\x02" + b"\x22\x00",
    "no message": b"\x08\x01",
    "refused": b"\x08\x01\x12\x01x",
    "truncated": b"\x22\x04\x08\x08",
    "a key of 6 bytes": b"\x88\x80\x80\x80\x80\x00\x05\x22\x00",
    "a message length of 6 bytes": b"\x22\x80\x80\x80\x80\x80\x00",
    "an entry length of 6 bytes": b"\x22\x09\x08\x08\x3a\x80\x80\x80\x80\x80\x00",
}


@pytest.mark.parametrize("payload", NOT_READ_HERE.values(), ids=NOT_READ_HERE.keys())
def test_what_is_not_read_here_is_left_to_protobuf(modules, payload):
    for module in modules:
        assert module.decode_message_frame(payload) is None


def overlong(value: int, width: int) -> bytes:
    """``value``'s varint padded to ``width`` bytes (continuation bits on zero groups), as some encoders write."""
    groups = [(value >> (7 * i)) & 0x7F for i in range(width)]
    return bytes(g | 0x80 for g in groups[:-1]) + bytes([groups[-1]])


@given(width=st.integers(1, 10), place=st.sampled_from(["key", "message length", "context length"]))
def test_keys_and_lengths_of_any_width_decode_as_protobufs_or_not_at_all(modules, width, place):
    key = overlong(0x22, width) if place == "key" else b"\x22"
    context = b"\x6a" + (overlong(2, width) if place == "context length" else b"\x02") + b"ab"
    body = b"\x08\x08" + context
    length = overlong(len(body), width) if place == "message length" else varint(len(body))
    payload = key + length + body
    compiled, twin = modules
    assert compiled.decode_message_frame(payload) == twin.decode_message_frame(payload)
    assert agrees(twin, payload)


def test_entry_data_of_any_buffer_is_written_as_its_bytes(modules):
    """An entry's or a context's data given as another buffer (items wider than a byte) is written as its bytes,
    as protobuf writes bytes(data)."""
    wide = memoryview(bytes(range(16))).cast("Q")
    m = Message(MessageType.APP, to=2, sender=1, entries=(Entry(1, 2, EntryType.NORMAL, wide),), context=wide)
    plain = Message(MessageType.APP, to=2, sender=1, entries=(Entry(1, 2, EntryType.NORMAL, bytes(wide)),))
    plain.context = bytes(wide)
    for module in modules:
        assert module.encode_message_frame(1, 1, 2, m) == codec.message_frame(1, 1, 2, plain)


def test_a_10_byte_varint_of_64_bits_is_read(modules):
    payload = b"\x08" + varint((1 << 64) - 1) + b"\x22\x00"
    for module in modules:
        assert module.decode_message_frame(payload) == ((1 << 64) - 1, 0, 0, Message(MessageType.HUP))
    assert protobufs_answer(payload) == ((1 << 64) - 1, 0, 0, Message(MessageType.HUP))


def test_planted_bugs_fail_the_comparison(monkeypatch):
    """A decoder that lets a repeated field replace the earlier one (protobuf merges a repeated message field),
    and one that reads MessageType numbers in another order, each disagree with protobuf."""
    first = Message(MessageType.APP, to=2, sender=1, term=5, entries=(Entry(5, 7, EntryType.NORMAL, b"x"),))
    second = Message(MessageType.APP, to=2, sender=1, index=9)
    merged = codec.message_frame(1, 1, 2, first)[4:] + codec.message_frame(1, 1, 2, second)[4:]
    assert agrees(peerframe_py, merged)

    def last_wins(buf, start, end, known, repeated=0):
        values = {}
        for number, wire_type, value in peerframe_py._fields(buf, start, end):
            if known.get(number) != wire_type:
                raise peerframe_py._NotFast
            values[number] = values.get(number, []) + [value] if number == repeated else value
        return values

    with monkeypatch.context() as patched:
        patched.setattr(peerframe_py, "_read", last_wins)
        assert not agrees(peerframe_py, merged)
    with monkeypatch.context() as patched:
        patched.setattr(peerframe_py, "TYPES", tuple(reversed(peerframe_py.TYPES)))
        assert not agrees(peerframe_py, codec.message_frame(1, 1, 2, first)[4:])

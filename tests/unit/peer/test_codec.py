"""The peer codec: every Message round-trips through a frame; bytes that are not a frame are refused."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx.pb.etcdxpb import raft_pb2
from etcdx.peer.codec import (
    CodecError,
    FrameReader,
    decode_frame,
    encode_frame,
    message_frame,
    message_from_pb,
    message_to_pb,
)
from etcdx.raft.messages import ConfChange, ConfChangeType, ConfState, Entry, EntryType, Message, MessageType, Snapshot

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small_bytes = st.binary(max_size=64)


@st.composite
def conf_states(draw):
    ids = draw(st.lists(u64, max_size=6, unique=True))
    cut = draw(st.integers(0, len(ids)))
    return ConfState(frozenset(ids[:cut]), frozenset(ids[cut:]))


entries = st.builds(
    Entry,
    term=u64,
    index=u64,
    type=st.sampled_from(EntryType),
    data=st.one_of(
        small_bytes, st.builds(lambda t, n: ConfChange(t, n).encode(), st.sampled_from(ConfChangeType), u64)
    ),
)
snapshots = st.builds(Snapshot, index=u64, term=u64, conf_state=conf_states(), data=small_bytes)
messages = st.builds(
    Message,
    type=st.sampled_from(MessageType),
    to=u64,
    sender=u64,
    term=u64,
    log_term=u64,
    index=u64,
    entries=st.lists(entries, max_size=5).map(tuple),
    commit=u64,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=u64,
    context=small_bytes,
)


@settings(max_examples=300, deadline=None)
@given(messages, u64)
def test_every_message_round_trips_through_a_frame(m, cluster_id):
    framed = message_frame(cluster_id, m.sender, m.to, m)
    [payload] = FrameReader().feed(framed)
    frame = decode_frame(payload)
    assert (frame.cluster_id, frame.sender, frame.receiver) == (cluster_id, m.sender, m.to)
    assert message_from_pb(frame.message) == m


@pytest.mark.parametrize("kind", list(MessageType))
def test_each_message_type_keeps_its_type(kind):
    m = Message(kind, to=2, sender=1, term=3)
    assert message_from_pb(message_to_pb(m)).type is kind


def test_an_empty_snapshot_is_not_an_absent_one():
    m = Message(MessageType.SNAP, to=2, sender=1, snapshot=Snapshot())
    assert message_from_pb(message_to_pb(m)).snapshot == Snapshot()
    assert message_from_pb(message_to_pb(Message(MessageType.APP))).snapshot is None


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, min_size=1, max_size=4), st.integers(1, 50))
def test_frames_split_anywhere_come_out_whole_and_in_order(ms, step):
    stream = b"".join(message_frame(7, m.sender, m.to, m) for m in ms)
    reader = FrameReader()
    out = []
    for i in range(0, len(stream), step):
        out += reader.feed(stream[i : i + step])
    assert [message_from_pb(decode_frame(p).message) for p in out] == ms
    assert reader.pending == 0


def test_a_length_over_the_maximum_is_refused_before_reading_it():
    reader = FrameReader(max_frame=1000)
    with pytest.raises(CodecError, match="exceeds the maximum"):
        reader.feed((1001).to_bytes(4, "big"))


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # not protobuf
        b"GET / HTTP/1.1\r\n",
        b"",  # parses, but has no body
        raft_pb2.PeerFrame(cluster_id=1).SerializeToString(),
    ],
)
def test_garbage_does_not_decode(payload):
    with pytest.raises(CodecError):
        decode_frame(payload)


def test_values_the_core_cannot_hold_are_refused():
    unknown_type = raft_pb2.Message(type=99)
    with pytest.raises(CodecError, match="unknown message type"):
        message_from_pb(unknown_type)
    bad_entry = raft_pb2.Message(entries=[raft_pb2.Entry(type=7)])
    with pytest.raises(CodecError, match="unknown entry type"):
        message_from_pb(bad_entry)
    both = raft_pb2.Message(
        has_snapshot=True, snapshot=raft_pb2.Snapshot(conf_state=raft_pb2.ConfState(voters=[1], learners=[1]))
    )
    with pytest.raises(CodecError, match="both voter and learner"):
        message_from_pb(both)


def test_encode_frame_prefixes_the_length():
    frame = raft_pb2.PeerFrame(cluster_id=5, snapshot_received=True)
    data = encode_frame(frame)
    assert int.from_bytes(data[:4], "big") == len(data) - 4


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_give_a_frame_or_a_codec_error_and_nothing_else(data):
    reader = FrameReader(max_frame=1 << 16)
    try:
        for payload in reader.feed(data):
            frame = decode_frame(payload)
            if frame.WhichOneof("body") == "message":
                message_from_pb(frame.message)
    except CodecError:
        pass


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_a_mutated_frame_gives_a_message_or_a_codec_error(m, data):
    payload = bytearray(message_frame(1, m.sender, m.to, m)[4:])
    at = data.draw(st.integers(0, len(payload) - 1))
    payload[at] = data.draw(st.integers(0, 255))
    try:
        frame = decode_frame(bytes(payload))
        if frame.WhichOneof("body") == "message":
            assert isinstance(message_from_pb(frame.message), Message)
    except CodecError:
        pass

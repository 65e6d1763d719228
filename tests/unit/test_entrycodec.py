"""The raft log entry codec, compiled and twin, against protobuf's own etcdxpb.Entry (upb): the same
bytes out, the same fields back, for any values, and for input other encoders may produce (fields out
of order or repeated, unknown fields, a field with another wire type).

The compiled module is imported directly: if it was not built, its tests fail instead of skipping.
"""

from __future__ import annotations

import importlib

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from etcdx._native.protowire import varint
from etcdx.pb.etcdxpb.raft_pb2 import Entry

IMPLEMENTATIONS = ["etcdx._native._entrycodec", "etcdx._native.entrycodec_py"]
compiled, twin = (importlib.import_module(name) for name in IMPLEMENTATIONS)
each_codec = pytest.mark.parametrize("codec", [compiled, twin], ids=["compiled", "twin"])

u64 = st.integers(0, (1 << 64) - 1)
i32 = st.integers(-(1 << 31), (1 << 31) - 1)
small_or_big = st.one_of(st.integers(0, 300), u64)


def as_tuple(entry: Entry) -> tuple[int, int, int, bytes]:
    return entry.term, entry.index, entry.type, entry.data


@each_codec
@given(term=small_or_big, index=small_or_big, entry_type=st.one_of(st.sampled_from([0, 1]), i32), data=st.binary())
def test_encode_is_protobufs_bytes_and_decodes_back(codec, term, index, entry_type, data):
    encoded = codec.encode(term, index, entry_type, data)
    assert encoded == Entry(term=term, index=index, type=entry_type, data=data).SerializeToString()
    assert codec.decode(encoded) == (term, index, entry_type, data)


def field(number: int, wire_type: int, value) -> bytes:
    key = varint(number << 3 | wire_type)
    if wire_type == 0:
        return key + varint(value)
    if wire_type == 1:
        return key + value.to_bytes(8, "little")
    if wire_type == 5:
        return key + value.to_bytes(4, "little")
    return key + varint(len(value)) + value


fields = st.one_of(
    st.builds(field, st.integers(1, 40), st.just(0), u64),
    st.builds(field, st.integers(1, 40), st.just(1), u64),
    st.builds(field, st.integers(1, 40), st.just(5), st.integers(0, (1 << 32) - 1)),
    st.builds(field, st.integers(1, 40), st.just(2), st.binary(max_size=20)),
    st.builds(lambda number: field(number, 0, 0), st.integers(1, (1 << 29) - 1)),
    st.builds(
        lambda number, inner: varint(number << 3 | 3) + inner + varint(number << 3 | 4),
        st.integers(1, 40),
        st.binary(max_size=0) | st.just(b"\x08\x05"),
    ),
)


@each_codec
@given(parts=st.lists(fields, max_size=12))
def test_decode_reads_what_protobuf_reads(codec, parts):
    buf = b"".join(parts)
    assert codec.decode(buf) == as_tuple(Entry.FromString(buf))


@each_codec
@given(term=st.integers(1, 1 << 40), data=st.binary(min_size=1, max_size=40), data2=st.data())
def test_truncated_input_is_refused(codec, term, data, data2):
    whole = Entry(term=term, index=term + 1, data=data).SerializeToString()
    # Field boundaries: after term, after index; any other cut lands inside a field.
    boundaries = {0, len(field(1, 0, term)), len(field(1, 0, term) + field(2, 0, term + 1)), len(whole)}
    cut = data2.draw(st.integers(1, len(whole) - 1).filter(lambda c: c not in boundaries))
    with pytest.raises(DecodeError):
        Entry.FromString(whole[:cut])
    with pytest.raises(ValueError):
        codec.decode(whole[:cut])


@each_codec
def test_groups_are_skipped_as_protobuf_skips_them(codec):
    group, end = b"\x2b", b"\x2c"
    for buf in (
        group + end + b"\x08\x07",
        group + b"\x08\x05" + end + b"\x08\x07",
        group * 100 + end * 100 + b"\x08\x07",
    ):
        assert codec.decode(buf) == as_tuple(Entry.FromString(buf)) == (7, 0, 0, b"")


@each_codec
def test_malformed_input_is_refused(codec):
    group, end = b"\x2b", b"\x2c"  # start and end of a group of field 5
    refused = (b"\x00\x01", b"\x08" + b"\xff" * 10 + b"\x01", b"\x0e", b"\x0f", end, group, group + b"\x34")
    refused += (group * 101 + end * 101, b"\x2a\x05abc", b"\x29\x00")
    for buf in refused:
        with pytest.raises(DecodeError):
            Entry.FromString(buf)
        with pytest.raises(ValueError):
            codec.decode(buf)


@each_codec
def test_buffers_and_ranges(codec):
    encoded = codec.encode(5, 9, 1, b"data")
    for view in (bytearray(encoded), memoryview(encoded)):
        assert codec.decode(view) == (5, 9, 1, b"data")
    assert codec.encode(5, 9, 1, bytearray(b"data")) == encoded
    assert codec.decode(b"") == (0, 0, 0, b"")
    for term, index, entry_type in ((-1, 0, 0), (1 << 64, 0, 0), (0, -1, 0), (0, 0, 1 << 31), (0, 0, -(1 << 31) - 1)):
        with pytest.raises(OverflowError):
            codec.encode(term, index, entry_type, b"")


# Bytes that are keys and values of Entry's fields, group starts and ends, and varint continuations.
wire_bytes = st.one_of(
    st.sampled_from([0x00, 0x01, 0x03, 0x05, 0x08, 0x09, 0x0D, 0x10, 0x18, 0x22, 0x2B, 0x2C]), st.integers(0, 255)
)


@each_codec
@given(buf=st.lists(wire_bytes, max_size=16).map(bytes))
def test_any_bytes_are_accepted_or_refused_as_protobuf_does(codec, buf):
    try:
        expected = as_tuple(Entry.FromString(buf))
    except DecodeError:
        with pytest.raises(ValueError):
            codec.decode(buf)
    else:
        assert codec.decode(buf) == expected

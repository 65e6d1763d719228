"""The WAL record codec, compiled and twin: the on-disk bytes, and the "record" / "end" / "bad" answers
for whole, torn, corrupt and zero-filled data.

The compiled module is imported directly: if it was not built (`python setup.py build_ext --inplace`),
its tests fail instead of skipping.
"""

from __future__ import annotations

import importlib
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcdx._native import load
from etcdx.wal import record

IMPLEMENTATIONS = ["etcdx._native._walrecord", "etcdx._native.walrecord_py"]
compiled, twin = (importlib.import_module(name) for name in IMPLEMENTATIONS)
each_codec = pytest.mark.parametrize("codec", [compiled, twin], ids=["compiled", "twin"])
payloads = st.binary(max_size=300)
record_types = st.integers(0, 255)


def reference_record(record_type: int, payload: bytes) -> bytes:
    """The format as etcdx/wal/record.py documents it, spelled out independently of both codecs."""
    body = bytes([record_type]) + payload
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def fields(decoded) -> tuple:
    return decoded.kind, decoded.record_type, decoded.payload, decoded.next_offset


def test_record_py_serves_the_loaded_codec():
    codec = load("walrecord")
    assert record.encode is codec.encode and record.decode_at is codec.decode_at and record.Decoded is codec.Decoded
    assert record.HEADER_SIZE == 8


@each_codec
def test_known_bytes(codec):
    assert codec.encode(1, b"hello").hex() == "06000000" + "9d23ac8a" + "01" + b"hello".hex()
    assert codec.encode(2, b"") == struct.pack("<II", 1, zlib.crc32(b"\x02")) + b"\x02"


@each_codec
@given(record_type=record_types, payload=payloads)
def test_encode_is_the_documented_format(codec, record_type, payload):
    assert codec.encode(record_type, payload) == reference_record(record_type, payload)


@each_codec
@given(record_type=record_types, batch=st.lists(payloads, max_size=20))
def test_encode_many_is_the_records_back_to_back(codec, record_type, batch):
    assert codec.encode_many(record_type, batch) == b"".join(reference_record(record_type, p) for p in batch)
    assert codec.encode_many(record_type, iter(batch)) == codec.encode_many(record_type, batch)


@each_codec
@given(records=st.lists(st.tuples(record_types, payloads), max_size=20), zeros=st.integers(0, 40))
def test_decode_walks_records_then_ends_at_the_zeros(codec, records, zeros):
    buf = b"".join(reference_record(t, p) for t, p in records) + bytes(zeros)
    offset, seen = 0, []
    while (decoded := codec.decode_at(buf, offset)).kind == "record":
        seen.append((decoded.record_type, decoded.payload))
        offset = decoded.next_offset
    assert seen == records
    assert decoded.kind == "end"
    assert decoded.next_offset == (offset + 8 if zeros >= 8 else len(buf))


@each_codec
@given(payload=payloads, data=st.data())
def test_a_torn_record_is_bad_and_says_where_it_would_end(codec, payload, data):
    whole = reference_record(7, payload)
    cut = data.draw(st.integers(1, len(whole) - 1))
    buf = b"\x00" * 3 + whole[:cut]
    decoded = codec.decode_at(buf, 3)
    if cut < 8:
        # A header cut short: only zeros so far (a length of zero bytes) is not distinguishable from the end.
        assert decoded.kind == ("end" if not whole[:cut].strip(b"\0") else "bad")
    else:
        assert decoded.kind == "bad"
    assert decoded.next_offset == len(buf)


@each_codec
@given(payload=payloads.filter(bool), data=st.data())
def test_any_flipped_bit_after_the_length_is_bad(codec, payload, data):
    whole = bytearray(reference_record(1, payload))
    position = data.draw(st.integers(4, len(whole) - 1))
    whole[position] ^= 1 << data.draw(st.integers(0, 7))
    decoded = codec.decode_at(bytes(whole) + bytes(16), 0)
    assert fields(decoded) == ("bad", 0, b"", len(whole))


@each_codec
def test_zero_length_with_a_crc_is_bad(codec):
    assert fields(codec.decode_at(struct.pack("<II", 0, 5) + bytes(8), 0)) == ("bad", 0, b"", 8)
    assert fields(codec.decode_at(bytes(16), 0)) == ("end", 0, b"", 8)


@each_codec
def test_a_short_tail_is_end_only_if_all_zeros(codec):
    assert fields(codec.decode_at(b"\0\0\0", 0)) == ("end", 0, b"", 3)
    assert fields(codec.decode_at(b"\0\0\x01", 0)) == ("bad", 0, b"", 3)
    assert fields(codec.decode_at(b"abc", 3)) == ("end", 0, b"", 3)
    assert fields(codec.decode_at(b"abc", 10)) == ("end", 0, b"", 3)


@each_codec
def test_buffers_and_offsets(codec):
    buf = b"junk" + reference_record(2, b"state")
    for view in (buf, bytearray(buf), memoryview(buf)):
        assert fields(codec.decode_at(view, 4)) == ("record", 2, b"state", len(buf))
    with pytest.raises(ValueError):
        codec.decode_at(buf, -1)


@each_codec
def test_out_of_range_type(codec):
    for bad in (-1, 256):
        with pytest.raises(OverflowError):
            codec.encode(bad, b"x")
        with pytest.raises(OverflowError):
            codec.encode_many(bad, [b"x"])


@each_codec
def test_decoded_compares_and_prints_as_a_value(codec):
    a = codec.Decoded("record", record_type=1, payload=b"p", next_offset=10)
    assert a == codec.Decoded("record", 1, b"p", 10) and hash(a) == hash(codec.Decoded("record", 1, b"p", 10))
    assert a != codec.Decoded("bad", next_offset=10)
    assert repr(a) == "Decoded(kind='record', record_type=1, payload=b'p', next_offset=10)"


@each_codec
@given(
    data=st.binary(max_size=40) | st.binary(max_size=40).map(lambda b: bytes(100) + b + bytes(50)),
    offset=st.integers(0, 200),
)
def test_zeros_from(codec, data, offset):
    assert codec.zeros_from(data, offset) is (not data[offset:].strip(b"\0"))
    assert codec.zeros_from(memoryview(data), offset) is (not data[offset:].strip(b"\0"))


@each_codec
def test_zeros_from_a_negative_offset(codec):
    with pytest.raises(ValueError):
        codec.zeros_from(b"", -1)


@given(buf=st.binary(max_size=64), offset=st.integers(0, 70))
def test_compiled_and_twin_agree_on_any_bytes(buf, offset):
    assert fields(compiled.decode_at(buf, offset)) == fields(twin.decode_at(buf, offset))

"""The HTTP/2 frame + HPACK codec (module ``h2codec``), for whichever implementation ``load`` gives (the two
pytest passes cover compiled and twin), checked against the ``hpack`` and ``hyperframe`` libraries, the
examples of RFC 7541 Appendix C, and malformed input. One test compares compiled and twin directly on the
same random input when the extension is built.
"""

from __future__ import annotations

import contextlib

import hpack
import hyperframe.frame
import pytest
from hpack.exceptions import HPACKDecodingError
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx._native import load
from tests.support.native_pair import compiled_and_twin

h2c = load("h2codec")

# -- frames ----------------------------------------------------------------------------------------

frames_st = st.lists(
    st.tuples(
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 2**31 - 1),
        st.binary(max_size=300),
    ),
    max_size=8,
)


def test_constants_are_rfc_9113_values():
    assert h2c.FRAME_HEADER_SIZE == 9
    types = [
        "DATA",
        "HEADERS",
        "PRIORITY",
        "RST_STREAM",
        "SETTINGS",
        "PUSH_PROMISE",
        "PING",
        "GOAWAY",
        "WINDOW_UPDATE",
        "CONTINUATION",
    ]
    assert {name: getattr(h2c, name) for name in types} == {name: code for code, name in enumerate(types)}
    flags = {"FLAG_END_STREAM": 1, "FLAG_ACK": 1, "FLAG_END_HEADERS": 4, "FLAG_PADDED": 8, "FLAG_PRIORITY": 0x20}
    assert {name: getattr(h2c, name) for name in flags} == flags
    codes = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
    ]
    assert {name: getattr(h2c, name) for name in codes} == {name: code for code, name in enumerate(codes)}


def test_encode_frame_matches_hyperframe():
    frame = hyperframe.frame.DataFrame(5, b"hello", flags=["END_STREAM"])
    assert h2c.encode_frame(h2c.DATA, h2c.FLAG_END_STREAM, 5, b"hello") == frame.serialize()
    ping = hyperframe.frame.PingFrame(0, b"12345678", flags=["ACK"])
    assert h2c.encode_frame(h2c.PING, h2c.FLAG_ACK, 0, b"12345678") == ping.serialize()


@pytest.mark.parametrize(("stream_id", "payload"), [(-1, b""), (2**31, b""), (1, bytes(2**24))])
def test_encode_frame_rejects_arguments_out_of_range(stream_id, payload):
    with pytest.raises(ValueError):
        h2c.encode_frame(h2c.DATA, 0, stream_id, payload)


@given(
    st.integers(1, 2**31 - 1),
    st.binary(max_size=40),
    st.binary(max_size=8),
    st.binary(max_size=300),
    st.binary(max_size=40),
)
def test_encode_response_is_three_frames(stream_id, header_block, head, body, trailer_block):
    data = h2c.encode_response(stream_id, header_block, head, body, trailer_block)
    assert data == (
        hyperframe.frame.HeadersFrame(stream_id, header_block, flags=["END_HEADERS"]).serialize()
        + hyperframe.frame.DataFrame(stream_id, head + body).serialize()
        + hyperframe.frame.HeadersFrame(stream_id, trailer_block, flags=["END_HEADERS", "END_STREAM"]).serialize()
    )
    assert h2c.FrameReader(400).feed(data) == [
        (h2c.HEADERS, h2c.FLAG_END_HEADERS, stream_id, header_block),
        (h2c.DATA, 0, stream_id, head + body),
        (h2c.HEADERS, h2c.FLAG_END_HEADERS | h2c.FLAG_END_STREAM, stream_id, trailer_block),
    ]


@pytest.mark.parametrize(
    ("stream_id", "blocks"),
    [
        (-1, (b"", b"", b"", b"")),
        (2**31, (b"", b"", b"", b"")),
        (1, (bytes(2**24), b"", b"", b"")),
        (1, (b"", bytes(2**23), bytes(2**23), b"")),
        (1, (b"", b"", b"", bytes(2**24))),
    ],
)
def test_encode_response_rejects_arguments_out_of_range(stream_id, blocks):
    with pytest.raises(ValueError):
        h2c.encode_response(stream_id, *blocks)


@given(frames_st)
def test_frames_round_trip(frames):
    data = b"".join(h2c.encode_frame(*f) for f in frames)
    reader = h2c.FrameReader(max_frame_size=300)
    assert reader.feed(data) == frames
    assert reader.pending() == 0


def test_frames_split_at_every_byte_boundary():
    frames = [
        (h2c.HEADERS, h2c.FLAG_END_HEADERS, 1, b"\x82\x86"),
        (h2c.DATA, 0, 1, b"x" * 40),
        (h2c.SETTINGS, h2c.FLAG_ACK, 0, b""),
        (0xEE, 0x7, 3, b"unknown type"),
        (h2c.DATA, h2c.FLAG_END_STREAM, 1, b"end"),
    ]
    data = b"".join(h2c.encode_frame(*f) for f in frames)
    for cut in range(len(data) + 1):
        reader = h2c.FrameReader()
        first = reader.feed(data[:cut])
        assert first == frames[: len(first)]
        assert reader.pending() == cut - sum(9 + len(f[3]) for f in first)
        assert first + reader.feed(data[cut:]) == frames
        assert reader.pending() == 0
    reader = h2c.FrameReader()
    one_by_one = [frame for i in range(len(data)) for frame in reader.feed(data[i : i + 1])]
    assert one_by_one == frames


@given(frames_st, st.lists(st.integers(0, 2000), max_size=6))
def test_frames_any_split(frames, cuts):
    data = b"".join(h2c.encode_frame(*f) for f in frames)
    reader = h2c.FrameReader(max_frame_size=300)
    got = []
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        got += reader.feed(data[start:cut])
        start = cut
    assert got == frames and reader.pending() == 0


def test_reserved_bit_is_cleared():
    raw = h2c.encode_frame(h2c.DATA, 0, 7, b"ab")
    raw = raw[:5] + bytes([raw[5] | 0x80]) + raw[6:]
    assert h2c.FrameReader().feed(raw) == [(h2c.DATA, 0, 7, b"ab")]
    assert h2c.parse_window_update(b"\x80\x00\x01\x00") == 256
    assert h2c.parse_goaway(b"\xff\xff\xff\xff\x00\x00\x00\x02debug") == (2**31 - 1, 2, b"debug")


def test_frame_longer_than_max_frame_size_is_a_frame_size_error():
    reader = h2c.FrameReader(max_frame_size=16)
    assert reader.feed(h2c.encode_frame(h2c.DATA, 0, 1, bytes(16))) == [(h2c.DATA, 0, 1, bytes(16))]
    header_only = h2c.encode_frame(h2c.DATA, 0, 1, bytes(17))[:9]
    with pytest.raises(h2c.H2CodecError) as error:
        reader.feed(h2c.encode_frame(h2c.PING, 0, 0, bytes(8)) + header_only)
    assert error.value.error_code == h2c.FRAME_SIZE_ERROR
    assert "17" in str(error.value)
    with pytest.raises(h2c.H2CodecError):  # the reader stays failed
        reader.feed(b"")
    reader.max_frame_size = 17  # settable: the bigger frame now fits
    assert reader.feed(bytes(17)) == [(h2c.DATA, 0, 1, bytes(17))]


def test_default_max_frame_size_is_16384():
    reader = h2c.FrameReader()
    assert reader.max_frame_size == 16384
    assert reader.feed(h2c.encode_frame(h2c.DATA, 0, 1, bytes(16384)))[0][3] == bytes(16384)
    with pytest.raises(h2c.H2CodecError):
        reader.feed(h2c.encode_frame(h2c.DATA, 0, 1, bytes(16385)))


def test_strip_padding_and_headers_fragment_against_hyperframe():
    block = b"\x82\x86\x84"
    plain = hyperframe.frame.HeadersFrame(1, block, flags=["END_HEADERS"]).serialize()
    padded = hyperframe.frame.HeadersFrame(1, block, flags=["END_HEADERS", "PADDED", "PRIORITY"])
    padded.pad_length = 6
    padded.depends_on, padded.stream_weight = 3, 200
    data = hyperframe.frame.DataFrame(1, b"payload", flags=["PADDED"])
    data.pad_length = 255
    frames = h2c.FrameReader().feed(plain + padded.serialize() + data.serialize())
    assert [h2c.headers_fragment(flags, payload) for _, flags, _, payload in frames[:2]] == [block, block]
    assert h2c.strip_padding(frames[2][1], frames[2][3]) == b"payload"
    assert h2c.strip_padding(0, b"\x05abc") == b"\x05abc"
    assert h2c.strip_padding(h2c.FLAG_PADDED, b"\x00") == b""


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x03ab", b"\xff" + bytes(100)])
def test_padding_longer_than_the_payload_is_a_protocol_error(payload):
    with pytest.raises(h2c.H2CodecError) as error:
        h2c.strip_padding(h2c.FLAG_PADDED, payload)
    assert error.value.error_code == h2c.PROTOCOL_ERROR


def test_headers_too_short_for_priority_is_a_frame_size_error():
    with pytest.raises(h2c.H2CodecError) as error:
        h2c.headers_fragment(h2c.FLAG_PRIORITY | h2c.FLAG_PADDED, b"\x01abcde")
    assert error.value.error_code == h2c.FRAME_SIZE_ERROR
    assert h2c.headers_fragment(h2c.FLAG_PRIORITY, b"abcde") == b""


def test_settings_round_trip_and_match_hyperframe():
    settings_list = [(1, 4096), (3, 100), (4, 2**31 - 1), (5, 16384), (0x99, 2**32 - 1)]
    payload = h2c.encode_settings(settings_list)
    assert h2c.parse_settings(payload) == settings_list
    assert (
        h2c.encode_frame(h2c.SETTINGS, 0, 0, payload)
        == hyperframe.frame.SettingsFrame(0, dict(settings_list)).serialize()
    )
    assert h2c.parse_settings(b"") == [] and h2c.encode_settings([]) == b""


@pytest.mark.parametrize(
    ("parse", "payload"),
    [
        ("parse_settings", bytes(5)),
        ("parse_settings", bytes(13)),
        ("parse_window_update", bytes(3)),
        ("parse_window_update", bytes(5)),
        ("parse_rst_stream", b""),
        ("parse_rst_stream", bytes(8)),
        ("parse_goaway", bytes(7)),
    ],
)
def test_control_payloads_of_the_wrong_length_are_frame_size_errors(parse, payload):
    with pytest.raises(h2c.H2CodecError) as error:
        getattr(h2c, parse)(payload)
    assert error.value.error_code == h2c.FRAME_SIZE_ERROR


def test_rst_stream_and_goaway():
    assert h2c.parse_rst_stream(b"\x00\x00\x00\x08") == h2c.CANCEL
    assert h2c.parse_goaway(bytes(8)) == (0, 0, b"")
    assert h2c.parse_window_update(b"\x00\x00\x00\x00") == 0


@given(st.binary(max_size=200), st.integers(0, 64))
def test_random_bytes_only_raise_codec_errors_in_framing(data, max_frame_size):
    reader = h2c.FrameReader(max_frame_size)
    for frame_type, flags, _, payload in _feed_or_empty(reader, data):
        for parse in (h2c.parse_settings, h2c.parse_window_update, h2c.parse_rst_stream, h2c.parse_goaway):
            _call_or_codec_error(parse, payload)
        _call_or_codec_error(h2c.headers_fragment, flags, payload)
        assert 0 <= frame_type <= 255


def _feed_or_empty(reader, data):
    try:
        return reader.feed(data)
    except h2c.H2CodecError:
        return []


def _call_or_codec_error(function, *args):
    with contextlib.suppress(h2c.H2CodecError):
        function(*args)


# -- HPACK: decoding -------------------------------------------------------------------------------

STATIC_NAMES = sorted({name for name, _ in hpack.table.HeaderTable.STATIC_TABLE})
STATIC_VALUES = sorted({value for _, value in hpack.table.HeaderTable.STATIC_TABLE})
names_st = st.one_of(st.sampled_from(STATIC_NAMES), st.binary(max_size=24))
values_st = st.one_of(st.sampled_from(STATIC_VALUES), st.binary(max_size=60), st.binary(min_size=200, max_size=400))
headers_st = st.lists(st.tuples(names_st, values_st, st.booleans()), max_size=12)
blocks_st = st.lists(
    st.tuples(headers_st, st.booleans(), st.one_of(st.none(), st.integers(0, 8192))), min_size=1, max_size=8
)


@settings(max_examples=300)
@given(blocks_st)
def test_decode_matches_hpack_encoder_across_blocks(blocks):
    """Blocks from one hpack Encoder (indexing, never-indexed fields, Huffman or not, table size
    changes) decode on one of our decoders to the encoded lists."""
    encoder = hpack.Encoder()
    decoder = h2c.HpackDecoder()
    decoder.set_max_allowed_table_size(8192)
    for headers, huffman, table_size in blocks:
        if table_size is not None:
            encoder.header_table_size = table_size
        block = encoder.encode(headers, huffman=huffman)
        assert decoder.decode(block) == [(name, value) for name, value, _ in headers]


def test_huffman_decodes_every_octet():
    encoder = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
    every = bytes(range(256))
    for data in (every, every[::-1], every * 3, b"", b"a", b"\xff\xfe"):
        encoded = encoder.encode(data)
        # a literal without indexing, new name "n", Huffman-coded value
        block = bytes([0x00, 0x01]) + b"n" + _huffman_string_header(len(encoded)) + encoded
        assert h2c.HpackDecoder().decode(block) == [(b"n", data)]


@settings(max_examples=500)
@given(
    st.one_of(
        st.binary(max_size=40), st.binary(max_size=40).map(HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode)
    )
)
def test_huffman_decode_agrees_with_hpack(data):
    """Random bytes (mostly invalid) and valid codes: the same octets as hpack's decoder, or both fail."""
    try:
        expected = decode_huffman(data)
    except HPACKDecodingError:
        with pytest.raises(h2c.H2CodecError) as error:
            h2c.huffman_decode(data)
        assert error.value.error_code == h2c.COMPRESSION_ERROR
    else:
        assert h2c.huffman_decode(data) == expected


def _huffman_string_header(length: int) -> bytes:
    """The H bit and 7-bit-prefix length of a Huffman string literal of ``length`` octets."""
    if length < 127:
        return bytes([0x80 | length])
    out = bytearray([0xFF])
    length -= 127
    while length >= 128:
        out.append(length & 0x7F | 0x80)
        length >>= 7
    out.append(length)
    return bytes(out)


# RFC 7541 Appendix C: the byte strings are the RFC's; decoding is checked and the resulting table is
# read back through indexed fields 62.. (index one past the table must fail).
C3 = [
    "828684410f7777772e6578616d706c652e636f6d",
    "828684be58086e6f2d6361636865",
    "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
]
C4 = [
    "828684418cf1e3c2e5f23a6ba0ab90f4ff",
    "828684be5886a8eb10649cbf",
    "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
]
REQUESTS = [
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"www.example.com")],
    [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
        (b"cache-control", b"no-cache"),
    ],
    [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/index.html"),
        (b":authority", b"www.example.com"),
        (b"custom-key", b"custom-value"),
    ],
]
REQUEST_TABLES = [
    [(b":authority", b"www.example.com")],
    [(b"cache-control", b"no-cache"), (b":authority", b"www.example.com")],
    [(b"custom-key", b"custom-value"), (b"cache-control", b"no-cache"), (b":authority", b"www.example.com")],
]
C5 = [
    "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d54"
    "6e1768747470733a2f2f7777772e6578616d706c652e636f6d",
    "4803333037c1c0bf",
    "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d"
    "4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273"
    "696f6e3d31",
]
C6 = [
    "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
    "4883640effc1c0bf",
    "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b39"
    "60d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
]
DATE1, DATE2 = b"Mon, 21 Oct 2013 20:13:21 GMT", b"Mon, 21 Oct 2013 20:13:22 GMT"
LOCATION = (b"location", b"https://www.example.com")
COOKIE = (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
RESPONSES = [
    [(b":status", b"302"), (b"cache-control", b"private"), (b"date", DATE1), LOCATION],
    [(b":status", b"307"), (b"cache-control", b"private"), (b"date", DATE1), LOCATION],
    [
        (b":status", b"200"),
        (b"cache-control", b"private"),
        (b"date", DATE2),
        LOCATION,
        (b"content-encoding", b"gzip"),
        COOKIE,
    ],
]
RESPONSE_TABLES = [
    [LOCATION, (b"date", DATE1), (b"cache-control", b"private"), (b":status", b"302")],
    [(b":status", b"307"), LOCATION, (b"date", DATE1), (b"cache-control", b"private")],
    [COOKIE, (b"content-encoding", b"gzip"), (b"date", DATE2)],
]


def dynamic_table(decoder) -> list[tuple[bytes, bytes]]:
    """The decoder's dynamic table, newest first, read through indexed header fields 62, 63, ..."""
    entries = []
    while True:
        index = 62 + len(entries)
        try:
            entries += decoder.decode(bytes([0xFF, index - 127]) if index >= 127 else bytes([0x80 | index]))
        except h2c.H2CodecError:
            return entries


@pytest.mark.parametrize(
    ("blocks", "table_size", "lists", "tables"),
    [
        (C3, 4096, REQUESTS, REQUEST_TABLES),
        (C4, 4096, REQUESTS, REQUEST_TABLES),
        (C5, 256, RESPONSES, RESPONSE_TABLES),
        (C6, 256, RESPONSES, RESPONSE_TABLES),
    ],
    ids=["C.3", "C.4", "C.5", "C.6"],
)
def test_rfc_7541_appendix_c(blocks, table_size, lists, tables):
    decoder = h2c.HpackDecoder(table_size)
    for block, expected, table in zip(blocks, lists, tables, strict=True):
        assert decoder.decode(bytes.fromhex(block)) == expected
        assert dynamic_table(decoder) == table
        assert sum(32 + len(n) + len(v) for n, v in table) <= table_size


def test_table_size_updates_evict_and_bound_later_entries():
    decoder = h2c.HpackDecoder()
    decoder.decode(bytes.fromhex(C3[0] + "58086e6f2d6361636865"))  # adds :authority, then cache-control
    assert dynamic_table(decoder) == REQUEST_TABLES[1]
    decoder.decode(bytes([0x3F, 0x1A]))  # size update to 57: only the newest 53-byte entry still fits
    assert dynamic_table(decoder) == [(b"cache-control", b"no-cache")]
    decoder.decode(bytes([0x20, 0x3F, 0xE1, 0x1F]))  # to 0 (empties), then back to 4096
    assert dynamic_table(decoder) == []
    decoder.decode(bytes.fromhex("400a637573746f6d2d6b65790c637573746f6d2d76616c7565"))
    assert dynamic_table(decoder) == [(b"custom-key", b"custom-value")]


def test_entry_larger_than_the_table_empties_it():
    decoder = h2c.HpackDecoder(100)
    decoder.decode(bytes.fromhex("400a637573746f6d2d6b65790c637573746f6d2d76616c7565"))
    assert dynamic_table(decoder) == [(b"custom-key", b"custom-value")]
    assert decoder.decode(b"\x40\x01k\x40" + bytes(64)) == [(b"k", bytes(64))]  # 97 bytes: fits alone
    assert dynamic_table(decoder) == [(b"k", bytes(64))]
    assert decoder.decode(b"\x40\x01k\x44" + bytes(68)) == [(b"k", bytes(68))]  # 101 bytes: too big
    assert dynamic_table(decoder) == []


@pytest.mark.parametrize(
    ("block", "what"),
    [
        (b"\x80", "index 0"),
        (b"\xbe", "index past an empty dynamic table"),
        (b"\xff\x80\x01", "index far past the table"),
        (b"\x7f\x80\x01\x00", "literal's name index past the table"),
        (b"\x3f\xe2\x1f", "size update above the allowed 4096"),
        (b"\x82\x20", "size update after a field"),
        (b"\x40\x05ab", "truncated name"),
        (b"\x00\x01a\x05abc", "truncated value"),
        (b"\x00\x01a", "missing value"),
        (b"\x40", "missing name"),
        (b"\xff", "truncated integer"),
        (b"\xff\xff\xff\xff\xff\xff\x7f", "integer with too many octets"),
        (b"\xff\xff\xff\xff\xff\x7f", "integer above 2**32 - 1"),
        (b"\x00\x01a\x84\xff\xff\xff\xff", "Huffman EOS"),
        (b"\x00\x01a\x81\xff", "Huffman padding of 8 bits"),
        (b"\x00\x01a\x81\x18", "Huffman padding not all ones ('a' then 000)"),
    ],
)
def test_malformed_blocks_are_compression_errors(block, what):
    with pytest.raises(h2c.H2CodecError) as error:
        h2c.HpackDecoder().decode(block)
    assert error.value.error_code == h2c.COMPRESSION_ERROR, what
    assert str(error.value)


def test_header_list_size_is_bounded():
    big = b"x" * 4000
    decoder = h2c.HpackDecoder(max_header_list_size=65536)
    block = hpack.Encoder().encode([(b"k", big)])  # literal with incremental indexing: entry 62
    assert decoder.decode(block) == [(b"k", big)]
    assert decoder.decode(b"\xbe" * 15) == [(b"k", big)] * 15  # 15 x 4033 bytes fit in 65536
    with pytest.raises(h2c.H2CodecError) as error:
        decoder.decode(b"\xbe" * 17)  # a 17-byte block that would expand to 68 kB
    assert error.value.error_code == h2c.COMPRESSION_ERROR
    assert h2c.HpackDecoder().decode(block) == [(b"k", big)]  # the default limit lets ordinary lists through


def test_huffman_padding_of_ones_is_accepted():
    assert h2c.HpackDecoder().decode(b"\x00\x01a\x81\x1f") == [(b"a", b"a")]


def test_allowed_size_bounds_size_updates():
    decoder = h2c.HpackDecoder()
    decoder.set_max_allowed_table_size(100)
    with pytest.raises(h2c.H2CodecError):
        decoder.decode(b"\x3f\x46")  # 101
    assert decoder.decode(b"\x3f\x45\x82") == [(b":method", b"GET")]  # 100, then a field


@settings(max_examples=500)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=6))
def test_random_bytes_only_raise_compression_errors(blocks):
    decoder = h2c.HpackDecoder()
    for block in blocks:
        try:
            headers = decoder.decode(block)
        except h2c.H2CodecError as error:
            assert error.error_code == h2c.COMPRESSION_ERROR
        else:
            assert all(type(n) is bytes and type(v) is bytes for n, v in headers)


# -- HPACK: encoding -------------------------------------------------------------------------------


@given(st.lists(st.lists(st.tuples(names_st, values_st), max_size=12), min_size=1, max_size=5))
def test_encoder_output_decodes_with_hpack(blocks):
    encoder = h2c.HpackEncoder()
    decoder = hpack.Decoder()
    for i, headers in enumerate(blocks):
        block = encoder.encode(headers)
        assert (block[:1] == b"\x20") == (i == 0)
        assert decoder.decode(block, raw=True) == headers
        assert len(decoder.header_table.dynamic_entries) == 0


def test_encoder_representations():
    encoder = h2c.HpackEncoder()
    assert encoder.encode([(b":status", b"200")]) == b"\x20\x88"
    assert encoder.encode([(b":status", b"200"), (b":method", b"POST")]) == b"\x88\x83"
    assert encoder.encode([(b"content-type", b"application/grpc")]) == b"\x0f\x10\x10application/grpc"
    assert encoder.encode([(b":path", b"/x")]) == b"\x04\x02/x"
    assert encoder.encode([(b"grpc-status", b"0")]) == b"\x00\x0bgrpc-status\x010"
    assert encoder.encode([]) == b""
    long_value = b"v" * 300
    assert encoder.encode([(b"a", long_value)]) == b"\x00\x01a\x7f\xad\x01" + long_value


def test_our_encoder_to_our_decoder():
    encoder, decoder = h2c.HpackEncoder(), h2c.HpackDecoder()
    headers = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"x-custom", bytes(range(256)))]
    for _ in range(3):
        assert decoder.decode(encoder.encode(headers)) == headers
    assert dynamic_table(decoder) == []


# -- compiled against twin -------------------------------------------------------------------------


def _both():
    return compiled_and_twin("h2codec")


def _outcome(function, *args):
    try:
        return ("ok", function(*args))
    except Exception as error:  # the comparison is on the error code, not on the exception class
        return ("error", getattr(error, "error_code", type(error).__name__))


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(st.binary(max_size=80), st.builds(lambda h: hpack.Encoder().encode(h), headers_st)),
        min_size=1,
        max_size=6,
    ),
    st.binary(max_size=120),
    st.integers(0, 40),
)
def test_compiled_matches_twin(blocks, stream, max_frame_size):
    compiled, twin = _both()
    assert compiled.H2CodecError is twin.H2CodecError  # one class to catch, whichever module was loaded
    decoders = compiled.HpackDecoder(), twin.HpackDecoder()
    for block in blocks:
        assert _outcome(decoders[0].decode, block) == _outcome(decoders[1].decode, block)
    readers = compiled.FrameReader(max_frame_size), twin.FrameReader(max_frame_size)
    for start in range(0, len(stream), 7):
        chunk = stream[start : start + 7]
        assert _outcome(readers[0].feed, chunk) == _outcome(readers[1].feed, chunk)
        assert readers[0].pending() == readers[1].pending()
    for name in ("parse_settings", "parse_window_update", "parse_rst_stream", "parse_goaway"):
        assert _outcome(getattr(compiled, name), stream) == _outcome(getattr(twin, name), stream)
    for flags in (0, 0x8, 0x20, 0x28):
        assert _outcome(compiled.headers_fragment, flags, stream) == _outcome(twin.headers_fragment, flags, stream)
    headers = [(block[:5], block[5:]) for block in blocks]
    assert compiled.HpackEncoder().encode(headers) == twin.HpackEncoder().encode(headers)
    for stream_id in (0, 1, max_frame_size, 2**31 - 1, 2**31):
        parts = (stream_id, blocks[0], stream[:5], stream[5:], blocks[-1])
        assert _outcome(compiled.encode_response, *parts) == _outcome(twin.encode_response, *parts)

"""etcdx's HTTP/2 server driver (etcdx.net.http2.ServerConnection) on the native codec, against RFC 9113.

Two kinds of peer: the `h2` library as an independent, correct client (what a real peer does), and frames
made by hand here (what a broken peer does). The server's output is read with a frame splitter written
here, independent of the codec under test. tests/unit/test_net_http2_driver.py has the first tests of the
seam (events, windows, ping, GOAWAY, preface); this file covers the rest of the state machine.
"""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest

from etcdx.net import http2

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQUEST = [(":method", "POST"), (":scheme", "http"), (":path", "/p.S/M"), (":authority", "x"), ("te", "trailers")]
RAW_REQUEST = [(n.encode(), v.encode()) for n, v in REQUEST]

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM = 0, 1, 3, 5, 6, 7
COMPRESSION_ERROR = 9


# -- helpers ---------------------------------------------------------------------------------------


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([frame_type, flags]) + struct.pack(">I", stream_id) + payload


def frames_of(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Splits the server's bytes into (type, flags, stream id, payload)."""
    out, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        frame_type, flags = data[pos + 3], data[pos + 4]
        stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        out.append((frame_type, flags, stream_id, data[pos + 9 : pos + 9 + length]))
        pos += 9 + length
    assert pos == len(data)
    return out


def of_type(frames: list, frame_type: int) -> list:
    return [f for f in frames if f[0] == frame_type]


def resets(server: http2.ServerConnection) -> dict[int, int]:
    """RST_STREAM frames the server sent since the last call: stream id -> error code."""
    return {sid: int.from_bytes(p, "big") for _, _, sid, p in of_type(frames_of(server.bytes_to_send()), RST_STREAM)}


def goaway(data: bytes) -> tuple[int, int]:
    """(last stream id, error code) of the one GOAWAY in ``data``."""
    [(_, _, _, payload)] = of_type(frames_of(data), GOAWAY)
    return int.from_bytes(payload[:4], "big"), int.from_bytes(payload[4:8], "big")


def h2_client(**settings) -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    values = {getattr(h2.settings.SettingCodes, name.upper()): value for name, value in settings.items()}
    client.local_settings = h2.settings.Settings(client=True, initial_values=values or None)
    client.initiate_connection()
    return client


def pair(server: http2.ServerConnection | None = None, **settings):
    """A connected h2 client and server, both handshakes done."""
    client = h2_client(**settings)
    server = server or http2.server_connection()
    server.receive(client.data_to_send())
    client.receive_data(server.bytes_to_send())
    server.receive(client.data_to_send())
    assert server.bytes_to_send() == b""
    return client, server


def raw_server(server: http2.ServerConnection | None = None) -> http2.ServerConnection:
    """A server past a hand-made handshake: empty SETTINGS from the client, then its ACK; output drained."""
    server = server or http2.server_connection()
    server.receive(PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0))
    server.bytes_to_send()
    return server


def header_block(headers, encoder: hpack.Encoder | None = None) -> bytes:
    return (encoder or hpack.Encoder()).encode(headers)


def request_frame(stream_id: int, end_stream: bool = False, headers=REQUEST, encoder=None) -> bytes:
    flags = END_HEADERS | (END_STREAM if end_stream else 0)
    return frame(HEADERS, flags, stream_id, header_block(headers, encoder))


def connection_error(server: http2.ServerConnection, data: bytes, code: int) -> http2.ProtocolError:
    """Feeds ``data``, which must be a connection error with ``code``: GOAWAY(code) and ProtocolError."""
    with pytest.raises(http2.ProtocolError) as info:
        server.receive(data)
    assert info.value.error_code == code
    assert goaway(server.bytes_to_send())[1] == code
    return info.value


# -- handshake and settings ------------------------------------------------------------------------


def test_server_preface_is_settings_then_the_connection_window():
    server = http2.server_connection()
    settings_frame, window = frames_of(server.bytes_to_send())
    assert settings_frame[:3] == (SETTINGS, 0, 0)
    values = dict(struct.iter_unpack(">HI", settings_frame[3]))
    assert values == {
        0x1: 4096,  # HEADER_TABLE_SIZE
        0x2: 0,  # ENABLE_PUSH
        0x3: http2.STREAM_CEILING,  # MAX_CONCURRENT_STREAMS
        0x4: http2.INITIAL_STREAM_WINDOW,
        0x5: 16384,  # MAX_FRAME_SIZE
        0x6: http2.MAX_HEADER_LIST_SIZE,
        0x8: 0,  # ENABLE_CONNECT_PROTOCOL
    }
    assert window[:3] == (WINDOW_UPDATE, 0, 0)
    assert int.from_bytes(window[3], "big") == http2.CONNECTION_WINDOW - 65535


def test_client_settings_are_acknowledged():
    server = http2.server_connection()
    server.bytes_to_send()
    assert server.receive(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 0x3, 100))) == []
    assert frames_of(server.bytes_to_send()) == [(SETTINGS, ACK, 0, b"")]


def test_a_bad_magic_is_refused_before_it_is_complete():
    server = http2.server_connection()
    server.bytes_to_send()
    connection_error(server, b"GET / HTTP/1.1\r\n", PROTOCOL_ERROR)


def test_peer_max_frame_size_is_followed():
    client, server = pair(max_frame_size=65536)
    assert server.max_frame_size == 65536


@pytest.mark.parametrize(
    "setting,code",
    [
        ((0x5, 16383), PROTOCOL_ERROR),  # MAX_FRAME_SIZE below the minimum
        ((0x5, 2**24), PROTOCOL_ERROR),  # and above the maximum
        ((0x4, 2**31), FLOW_CONTROL_ERROR),  # INITIAL_WINDOW_SIZE above 2**31-1
        ((0x2, 2), PROTOCOL_ERROR),  # ENABLE_PUSH neither 0 nor 1
    ],
)
def test_settings_out_of_range_are_connection_errors(setting, code):
    connection_error(raw_server(), frame(SETTINGS, 0, 0, struct.pack(">HI", *setting)), code)


@pytest.mark.parametrize(
    "bad,code",
    [
        (frame(SETTINGS, 0, 1), PROTOCOL_ERROR),  # on a stream
        (frame(SETTINGS, ACK, 0, b"\0" * 6), FRAME_SIZE_ERROR),  # an ACK with a payload
        (frame(SETTINGS, 0, 0, b"\0" * 5), FRAME_SIZE_ERROR),  # not a multiple of 6
    ],
)
def test_malformed_settings_are_connection_errors(bad, code):
    connection_error(raw_server(), bad, code)


def test_unknown_settings_and_frame_types_are_ignored():
    server = raw_server()
    assert server.receive(frame(SETTINGS, 0, 0, struct.pack(">HI", 0x99, 7)) + frame(0xFA, 0xFF, 3, b"x")) == []
    assert frames_of(server.bytes_to_send()) == [(SETTINGS, ACK, 0, b"")]


# -- requests: headers, continuation, padding, trailers --------------------------------------------


def test_continuation_frames_complete_a_header_block():
    server = raw_server()
    block = header_block(REQUEST)
    data = (
        frame(HEADERS, END_STREAM, 1, block[:3])
        + frame(CONTINUATION, 0, 1, block[3:9])
        + frame(CONTINUATION, END_HEADERS, 1, block[9:])
    )
    [event] = server.receive(data)
    assert event == http2.RequestHeaders(1, RAW_REQUEST, True)


def test_padding_and_priority_fields_are_removed():
    server = raw_server()
    block = header_block(REQUEST)
    payload = bytes([3]) + b"\x00\x00\x00\x00\x10" + block + b"\0\0\0"  # pad length, priority, block, padding
    data = frame(HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG, 1, payload)
    data += frame(DATA, PADDED | END_STREAM, 1, bytes([4]) + b"body" + b"\0" * 4)
    headers_event, data_event = server.receive(data)
    assert headers_event.headers == RAW_REQUEST
    assert data_event == http2.Data(1, b"body", 9, True)  # the flow-controlled length counts the padding


def test_the_hpack_dynamic_table_follows_every_block_even_refused_ones():
    server = raw_server()
    encoder = hpack.Encoder()  # indexes fields: later blocks refer to earlier ones
    malformed = [*REQUEST, ("x-custom", "value"), ("Upper", "case")]
    server.receive(request_frame(1, True, malformed, encoder))
    assert resets(server) == {1: PROTOCOL_ERROR}
    [event] = server.receive(request_frame(3, True, [*REQUEST, ("x-custom", "value")], encoder))
    assert event.headers == [*RAW_REQUEST, (b"x-custom", b"value")]


def test_requests_through_the_h2_client_keep_their_headers():
    client, server = pair()
    for stream_id in (1, 3, 5):
        client.send_headers(stream_id, [*REQUEST, ("x-n", str(stream_id))], end_stream=True)
        [event] = server.receive(client.data_to_send())
        assert event.headers[-1] == (b"x-n", str(stream_id).encode())


def test_a_header_block_interrupted_by_another_frame_is_a_connection_error():
    block = header_block(REQUEST)
    data = frame(HEADERS, 0, 1, block[:3]) + frame(PING, 0, 0, b"\0" * 8)
    connection_error(raw_server(), data, PROTOCOL_ERROR)


def test_continuation_on_another_stream_or_alone_is_a_connection_error():
    block = header_block(REQUEST)
    other_stream = frame(HEADERS, 0, 1, block[:3]) + frame(CONTINUATION, END_HEADERS, 3, block[3:])
    connection_error(raw_server(), other_stream, PROTOCOL_ERROR)
    connection_error(raw_server(), frame(CONTINUATION, END_HEADERS, 1, block), PROTOCOL_ERROR)


def test_an_undecodable_header_block_is_a_compression_error():
    connection_error(raw_server(), frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff\xff\xff\xff\xff"), COMPRESSION_ERROR)


def test_a_header_list_above_the_advertised_size_is_a_compression_error():
    big = b"x-big"
    value = b"v" * 4000
    # One literal added to the dynamic table, then referred to (index 62, one byte) until the decoded list
    # passes SETTINGS_MAX_HEADER_LIST_SIZE: a small block that would expand without the bound.
    refs = http2.MAX_HEADER_LIST_SIZE // (32 + len(big) + len(value)) + 1
    block = b"\x40" + bytes([len(big)]) + big + b"\x7f" + _hpack_int(len(value) - 127) + value + b"\xbe" * refs
    assert len(block) <= 16384
    connection_error(raw_server(), frame(HEADERS, END_HEADERS, 1, block), COMPRESSION_ERROR)


def _hpack_int(rest: int) -> bytes:
    """The continuation octets of an HPACK integer whose prefix is full (RFC 7541 5.1)."""
    out = bytearray()
    while rest >= 128:
        out.append(rest % 128 + 128)
        rest //= 128
    out.append(rest)
    return bytes(out)


def test_padding_longer_than_the_payload_is_a_protocol_error():
    server = raw_server()
    server.receive(request_frame(1))
    connection_error(server, frame(DATA, PADDED, 1, bytes([9]) + b"abc"), PROTOCOL_ERROR)


@pytest.mark.parametrize(
    "headers",
    [
        [h for h in REQUEST if h[0] != ":path"],  # a required pseudo-header missing
        [h for h in REQUEST if h[0] != ":method"],
        [*REQUEST, (":path", "/again")],  # repeated
        [*REQUEST, (":status", "200")],  # a response pseudo-header
        [("te", "trailers"), *REQUEST[:4]],  # a pseudo-header after a regular field
        [*REQUEST, ("Content-Type", "application/grpc")],  # uppercase name
        [*REQUEST, ("connection", "keep-alive")],  # connection-specific field
        [*REQUEST[:4], ("te", "gzip")],  # te other than trailers
        [*REQUEST, ("x-bad", "line\r\nbreak")],  # CR LF in a value
        [*REQUEST, ("x-bad", " padded")],  # leading whitespace in a value
    ],
)
def test_a_malformed_request_is_reset_with_protocol_error_and_never_seen(headers):
    server = raw_server()
    assert server.receive(request_frame(1, False, headers) + frame(DATA, END_STREAM, 1, b"late")) == []
    assert resets(server) == {1: PROTOCOL_ERROR}
    [event] = server.receive(request_frame(3, True))  # the connection goes on
    assert isinstance(event, http2.RequestHeaders)


def test_fields_are_checked_on_every_request_of_a_connection():
    server = raw_server()
    encoder = hpack.Encoder()
    bad = [*REQUEST, ("x-bad", "nul\0")]
    for sid in (1, 3):  # a field is refused every time it comes, even when indexed by the peer's encoder
        assert server.receive(request_frame(sid, True, bad, encoder)) == []
    good = [*REQUEST, ("x-good", "v")]
    for sid in (5, 7):
        assert [type(e) for e in server.receive(request_frame(sid, True, good, encoder))] == [http2.RequestHeaders]
    assert resets(server) == {1: PROTOCOL_ERROR, 3: PROTOCOL_ERROR}


def test_trailers_end_the_stream_and_must_end_it_without_pseudo_headers():
    server = raw_server()
    encoder = hpack.Encoder()
    server.receive(
        request_frame(1, encoder=encoder) + request_frame(3, encoder=encoder) + request_frame(5, encoder=encoder)
    )
    trailers = header_block([("x-trailer", "1")], encoder)
    assert server.receive(frame(HEADERS, END_HEADERS | END_STREAM, 1, trailers)) == [http2.StreamEnded(1)]
    no_end = header_block([("x-trailer", "2")], encoder)
    assert server.receive(frame(HEADERS, END_HEADERS, 3, no_end)) == [http2.StreamReset(3)]
    pseudo = header_block([(":path", "/x")], encoder)
    assert server.receive(frame(HEADERS, END_HEADERS | END_STREAM, 5, pseudo)) == [http2.StreamReset(5)]
    assert resets(server) == {3: PROTOCOL_ERROR, 5: PROTOCOL_ERROR}


# -- stream ids and states -------------------------------------------------------------------------


def test_a_client_stream_id_must_be_odd():
    connection_error(raw_server(), request_frame(2, True), PROTOCOL_ERROR)


@pytest.mark.parametrize(
    "bad",
    [
        frame(DATA, 0, 1, b"x"),
        frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1)),
        frame(RST_STREAM, 0, 1, struct.pack(">I", 0)),
        frame(DATA, 0, 0, b"x"),
    ],
)
def test_frames_on_an_idle_stream_are_protocol_errors(bad):
    connection_error(raw_server(), bad, PROTOCOL_ERROR)


def test_priority_is_ignored_even_on_idle_streams():
    server = raw_server()
    assert server.receive(frame(PRIORITY, 0, 7, b"\x00\x00\x00\x01\x10")) == []
    assert server.bytes_to_send() == b""
    [event] = server.receive(request_frame(7, True))  # a PRIORITY does not open the stream
    assert event.stream_id == 7


@pytest.mark.parametrize(
    "bad,code",
    [(frame(PRIORITY, 0, 1, b"\0" * 4), FRAME_SIZE_ERROR), (frame(PRIORITY, 0, 0, b"\0" * 5), PROTOCOL_ERROR)],
)
def test_a_malformed_priority_is_an_error(bad, code):
    connection_error(raw_server(), bad, code)


def test_a_stream_id_lower_than_one_already_used_is_closed():
    server = raw_server()
    server.receive(request_frame(5, True))
    connection_error(server, request_frame(3, True), STREAM_CLOSED)


def test_data_on_a_finished_stream_is_stream_closed():
    client, server = pair()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive(client.data_to_send())
    server.send_headers(1, [(b":status", b"200")], end_stream=True)
    server.bytes_to_send()
    connection_error(server, frame(DATA, 0, 1, b"x"), STREAM_CLOSED)


def test_data_after_the_peers_end_stream_resets_the_stream():
    server = raw_server()
    server.receive(request_frame(1, True))
    assert server.receive(frame(DATA, 0, 1, b"x")) == [http2.StreamReset(1)]
    assert resets(server) == {1: STREAM_CLOSED}
    with pytest.raises(http2.StreamClosedError):
        server.send_headers(1, [(b":status", b"200")])


def test_frames_the_peer_sent_before_seeing_our_reset_are_ignored():
    server = raw_server()
    server.receive(request_frame(1))
    server.reset(1, 8)
    assert resets(server) == {1: 8}
    late = frame(DATA, 0, 1, b"x" * 100) + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 5))
    late += frame(HEADERS, END_HEADERS | END_STREAM, 1, header_block([("x-trailer", "1")]))
    assert server.receive(late) == []
    assert server.bytes_to_send() == b""
    # The peer ended the stream: anything more on it is a protocol violation.
    connection_error(server, frame(DATA, 0, 1, b"x"), STREAM_CLOSED)


def test_reset_streams_and_window_updates_on_closed_streams_are_ignored():
    client, server = pair()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive(client.data_to_send())
    server.send_headers(1, [(b":status", b"200")], end_stream=True)
    server.bytes_to_send()
    quiet = frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 10)) + frame(RST_STREAM, 0, 1, struct.pack(">I", 8))
    assert server.receive(quiet) == []
    assert server.bytes_to_send() == b""


def test_a_reset_from_the_peer_closes_the_stream_for_sending():
    client, server = pair()
    client.send_headers(1, REQUEST)
    server.receive(client.data_to_send())
    client.reset_stream(1, 8)
    assert server.receive(client.data_to_send()) == [http2.StreamReset(1)]
    for send in (lambda: server.send_data(1, b"x"), lambda: server.send_window(1)):
        with pytest.raises(http2.StreamClosedError):
            send()
    server.reset(1)  # resetting a closed stream does nothing
    assert server.bytes_to_send() == b""


RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]


def two_servers_with_a_request(**settings):
    """Two drivers in the same state: an h2 client's request (stream 1, ended) received by both."""
    client = h2_client(**settings)
    servers = http2.server_connection(), http2.server_connection()
    hello = client.data_to_send()
    for server in servers:
        server.receive(hello)
    client.receive_data(servers[0].bytes_to_send())
    servers[1].bytes_to_send()
    client.send_headers(1, REQUEST, end_stream=True)
    more = client.data_to_send()
    for server in servers:
        server.receive(more)
        server.bytes_to_send()
    return client, servers


@pytest.mark.parametrize("size", [0, 1, 16379])
def test_send_response_sends_what_headers_data_and_trailers_send(size):
    client, (whole, parts) = two_servers_with_a_request()
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert whole.send_response(1, RESPONSE, b"\0\0\0\0\1", body, TRAILERS)
    parts.send_headers(1, RESPONSE)
    parts.send_data(1, b"\0\0\0\0\1" + body)
    parts.send_headers(1, TRAILERS, end_stream=True)
    data = whole.bytes_to_send()
    assert data == parts.bytes_to_send()
    events = client.receive_data(data)
    assert [type(e) for e in events][-2:] == [h2.events.TrailersReceived, h2.events.StreamEnded]
    with pytest.raises(http2.StreamClosedError):
        whole.send_response(1, RESPONSE, b"", b"", TRAILERS)


def test_send_response_sends_nothing_beyond_the_window_or_one_frame():
    client, (server, _) = two_servers_with_a_request(initial_window_size=100)
    assert not server.send_response(1, RESPONSE, b"12345", bytes(96), TRAILERS)
    assert server.bytes_to_send() == b""
    assert server.send_window(1) == 100
    client, (server, _) = two_servers_with_a_request()
    assert not server.send_response(1, RESPONSE, b"12345", bytes(16380), TRAILERS)
    assert server.bytes_to_send() == b""
    assert server.send_response(1, RESPONSE, b"12345", bytes(95), TRAILERS)
    with pytest.raises(http2.StreamClosedError):  # the response ended the stream
        server.send_window(1)


def test_send_response_splits_a_large_header_block_into_continuations():
    client, (whole, parts) = two_servers_with_a_request()
    trailers = [*TRAILERS, (b"x-big", b"v" * 20000)]
    assert whole.send_response(1, RESPONSE, b"", b"hi", trailers)
    parts.send_headers(1, RESPONSE)
    parts.send_data(1, b"hi")
    parts.send_headers(1, trailers, end_stream=True)
    data = whole.bytes_to_send()
    assert data == parts.bytes_to_send()
    assert [f[0] for f in frames_of(data)] == [HEADERS, DATA, HEADERS, CONTINUATION]
    events = client.receive_data(data)
    assert dict(events[-2].headers)["x-big"] == "v" * 20000


def test_push_promise_from_a_client_is_a_protocol_error():
    connection_error(raw_server(), frame(PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\2"), PROTOCOL_ERROR)


def test_concurrent_streams_above_the_limit_are_refused():
    server = raw_server(http2.server_connection(max_concurrent_streams=1))
    [event] = server.receive(request_frame(1))
    assert server.receive(request_frame(3) + frame(DATA, END_STREAM, 3, b"x")) == []
    assert resets(server) == {3: REFUSED_STREAM}
    server.send_headers(1, [(b":status", b"200")], end_stream=True)
    server.receive(frame(DATA, END_STREAM, 1, b""))  # stream 1 is now closed both ways
    server.bytes_to_send()
    [event] = server.receive(request_frame(5, True))
    assert event.stream_id == 5


# -- ping, goaway, errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad,code", [(frame(PING, 0, 0, b"\0" * 7), FRAME_SIZE_ERROR), (frame(PING, 0, 1, b"\0" * 8), PROTOCOL_ERROR)]
)
def test_a_malformed_ping_is_a_connection_error(bad, code):
    connection_error(raw_server(), bad, code)


def test_a_ping_ack_is_not_answered():
    server = raw_server()
    assert server.receive(frame(PING, ACK, 0, b"12345678")) == []
    assert server.bytes_to_send() == b""


def test_a_connection_error_names_the_last_stream_and_ends_the_connection():
    server = raw_server()
    server.receive(request_frame(1, True) + request_frame(3, True))
    server.bytes_to_send()
    with pytest.raises(http2.ProtocolError) as info:
        server.receive(frame(PUSH_PROMISE, 0, 1, b""))
    error = info.value
    assert goaway(server.bytes_to_send()) == (3, PROTOCOL_ERROR)
    with pytest.raises(http2.ProtocolError) as again:
        server.receive(frame(PING, 0, 0, b"\0" * 8))
    assert again.value is error
    server.close()  # the GOAWAY is out already
    assert server.bytes_to_send() == b""


def test_the_goaway_of_an_error_follows_what_was_queued_before_it():
    server = raw_server()
    server.receive(request_frame(1, True))
    server.send_headers(1, [(b":status", b"200")])
    with pytest.raises(http2.ProtocolError):
        server.receive(frame(PING, 0, 0, b"abcdefgh") + frame(PUSH_PROMISE, 0, 1, b""))
    kinds = [f[0] for f in frames_of(server.bytes_to_send())]
    assert kinds == [HEADERS, PING, GOAWAY]


def test_after_close_open_streams_finish_and_new_ones_are_ignored():
    client, server = pair()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive(client.data_to_send())
    server.close()
    assert goaway(server.bytes_to_send()) == (1, NO_ERROR)
    client.send_headers(3, REQUEST)
    client.send_data(3, b"body")
    assert server.receive(client.data_to_send()) == []
    server.send_headers(1, [(b":status", b"200")])
    server.send_data(1, b"reply", end_stream=True)
    events = client.receive_data(server.bytes_to_send())
    assert [e.data for e in events if isinstance(e, h2.events.DataReceived)] == [b"reply"]
    server.close()
    assert server.bytes_to_send() == b""


def test_an_oversized_frame_is_a_frame_size_error():
    connection_error(raw_server(), frame(DATA, 0, 1, b"x" * 16385), FRAME_SIZE_ERROR)


# -- sending ---------------------------------------------------------------------------------------


def test_a_header_block_above_the_peers_frame_size_goes_in_continuation_frames():
    client, server = pair()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive(client.data_to_send())
    big = [(b":status", b"200"), (b"x-big", b"v" * 40000)]
    server.send_headers(1, big)
    data = server.bytes_to_send()
    assert [(f[0], f[1]) for f in frames_of(data)] == [(HEADERS, 0), (CONTINUATION, 0), (CONTINUATION, END_HEADERS)]
    [event] = client.receive_data(data)
    assert isinstance(event, h2.events.ResponseReceived) and dict(event.headers)["x-big"] == "v" * 40000


def test_send_data_is_cut_at_the_peers_max_frame_size_and_ends_the_stream_once():
    client, server = pair(initial_window_size=100_000)
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive(client.data_to_send())
    client.increment_flow_control_window(100_000)
    server.receive(client.data_to_send())
    payload = bytes(range(256)) * 160  # 40960 bytes
    server.send_headers(1, [(b":status", b"200")])
    server.send_data(1, payload, end_stream=True)
    data = server.bytes_to_send()
    sizes_and_flags = [(len(f[3]), f[1]) for f in of_type(frames_of(data), DATA)]
    assert sizes_and_flags == [(16384, 0), (16384, 0), (8192, END_STREAM)]
    events = client.receive_data(data)
    assert b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived)) == payload
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_send_data_beyond_the_window_is_refused_and_sends_nothing():
    client, server = pair()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive(client.data_to_send())
    server.bytes_to_send()
    with pytest.raises(ValueError):
        server.send_data(1, b"x" * 65536)
    assert server.bytes_to_send() == b"" and server.send_window(1) == 65535


def test_sending_after_our_end_stream_is_refused():
    client, server = pair()
    client.send_headers(1, REQUEST)
    server.receive(client.data_to_send())
    server.send_headers(1, [(b":status", b"200"), (b"grpc-status", b"0")], end_stream=True)
    with pytest.raises(http2.StreamClosedError):
        server.send_data(1, b"x")
    # The peer may still send until it ends its side.
    client.send_data(1, b"more", end_stream=True)
    client.receive_data(server.bytes_to_send())
    assert server.receive(client.data_to_send()) == [http2.Data(1, b"more", 4, True)]


def test_the_encoder_leaves_the_peers_dynamic_table_alone():
    client, server = pair(header_table_size=0)
    for stream_id in (1, 3):
        client.send_headers(stream_id, REQUEST, end_stream=True)
    server.receive(client.data_to_send())
    response = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"x-meta", b"same")]
    server.send_headers(1, response, end_stream=True)
    server.send_headers(3, response, end_stream=True)
    events = client.receive_data(server.bytes_to_send())
    got = [e.headers for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert got == [[(n.decode(), v.decode()) for n, v in response]] * 2


# -- flow control ----------------------------------------------------------------------------------


def test_a_larger_initial_window_grows_open_streams_and_is_an_event():
    client, server = pair()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive(client.data_to_send())
    client.increment_flow_control_window(1_000_000)
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 200_000})
    events = server.receive(client.data_to_send())
    assert http2.WindowOpened(0) in events
    assert server.send_window(1) == 200_000


def test_a_smaller_initial_window_can_leave_a_stream_window_negative():
    client, server = pair()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive(client.data_to_send())
    server.send_headers(1, [(b":status", b"200")])
    server.send_data(1, b"x" * 60000)
    client.receive_data(server.bytes_to_send())
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    assert http2.WindowOpened(0) not in server.receive(client.data_to_send())
    assert server.send_window(1) == 1000 - 60000


def test_window_updates_on_a_stream_and_the_connection():
    server = raw_server()
    server.receive(request_frame(1, True))
    events = server.receive(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 10)))
    assert events == [http2.WindowOpened(1)]
    assert server.send_window(1) == 65535  # the connection window is the smaller one
    assert server.receive(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 10))) == [http2.WindowOpened(0)]
    assert server.send_window(1) == 65545


def test_a_stream_window_update_of_zero_or_past_the_maximum_resets_the_stream():
    server = raw_server()
    server.receive(request_frame(1, True) + request_frame(3, True))
    assert server.receive(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0))) == [http2.StreamReset(1)]
    assert server.receive(frame(WINDOW_UPDATE, 0, 3, struct.pack(">I", 2**31 - 1))) == [http2.StreamReset(3)]
    assert resets(server) == {1: PROTOCOL_ERROR, 3: FLOW_CONTROL_ERROR}


@pytest.mark.parametrize("increment,code", [(0, PROTOCOL_ERROR), (2**31 - 1, FLOW_CONTROL_ERROR)])
def test_a_connection_window_update_of_zero_or_past_the_maximum_is_a_connection_error(increment, code):
    connection_error(raw_server(), frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", increment)), code)


def test_a_window_update_of_the_wrong_size_is_a_frame_size_error():
    connection_error(raw_server(), frame(WINDOW_UPDATE, 0, 0, b"\0\0\1"), FRAME_SIZE_ERROR)


def window_updates(server: http2.ServerConnection) -> dict[int, int]:
    out: dict[int, int] = {}
    for _, _, sid, payload in of_type(frames_of(server.bytes_to_send()), WINDOW_UPDATE):
        out[sid] = out.get(sid, 0) + int.from_bytes(payload, "big")
    return out


def test_acknowledged_bytes_are_granted_back_once_half_a_window_is_consumed():
    server = raw_server()
    server.receive(request_frame(1))
    chunk = frame(DATA, 0, 1, b"d" * 16384)
    half = http2.INITIAL_STREAM_WINDOW // 2
    for _ in range(half // 16384 - 1):
        server.receive(chunk)
        server.acknowledge(1, 16384)
    assert window_updates(server) == {}
    server.receive(chunk)
    server.acknowledge(1, 16384)
    assert window_updates(server) == {1: half}


def test_a_peer_waiting_on_an_exhausted_window_gets_whatever_was_acknowledged():
    server = raw_server()
    server.receive(request_frame(1))
    chunk = frame(DATA, 0, 1, b"d" * 16384)
    for _ in range(http2.INITIAL_STREAM_WINDOW // 16384):
        server.receive(chunk)
    server.acknowledge(1, 100)  # the stream window is 0: even a little is granted
    assert window_updates(server) == {1: 100}


def test_overrunning_the_stream_window_is_a_flow_control_error():
    server = raw_server()
    server.receive(request_frame(1))
    chunk = frame(DATA, 0, 1, b"d" * 16384)
    server.receive(chunk * (http2.INITIAL_STREAM_WINDOW // 16384))
    connection_error(server, frame(DATA, 0, 1, b"x"), FLOW_CONTROL_ERROR)


def test_overrunning_the_connection_window_is_a_flow_control_error():
    server = raw_server()
    per_stream = http2.INITIAL_STREAM_WINDOW // 16384
    streams = http2.CONNECTION_WINDOW // http2.INITIAL_STREAM_WINDOW
    for n in range(streams):
        sid = 2 * n + 1
        server.receive(request_frame(sid) + frame(DATA, 0, sid, b"d" * 16384) * per_stream)
    last = 2 * streams + 1
    connection_error(server, request_frame(last) + frame(DATA, 0, last, b"x"), FLOW_CONTROL_ERROR)


def test_bytes_on_streams_nobody_reads_go_back_to_the_connection_window():
    server = raw_server()
    server.receive(request_frame(1))
    server.reset(1, 8)
    server.bytes_to_send()
    chunk = frame(DATA, 0, 1, b"d" * 16384)
    for _ in range(http2.CONNECTION_WINDOW // 2 // 16384):
        server.receive(chunk)  # ignored, yet counted: without a grant the peer would stall
    assert window_updates(server) == {0: http2.CONNECTION_WINDOW // 2}

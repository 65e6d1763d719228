"""The sans-I/O HTTP/2 server driver (etcdx.net.http2) against the `h2` library as the client: bytes in,
events out; methods out, bytes to send. No sockets."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest

from etcdx.net import http2

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS = [(":method", "POST"), (":scheme", "http"), (":path", "/p.S/M"), (":authority", "x"), ("te", "trailers")]


def pair() -> tuple[h2.connection.H2Connection, http2.ServerConnection]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    client.initiate_connection()
    server = http2.server_connection()
    server.receive(client.data_to_send())
    client.receive_data(server.bytes_to_send())
    server.receive(client.data_to_send())  # the client's SETTINGS ACK
    return client, server


def test_server_settings_and_windows_are_generous():
    client, server = pair()
    assert client.remote_settings.initial_window_size == http2.INITIAL_STREAM_WINDOW
    assert client.outbound_flow_control_window == http2.CONNECTION_WINDOW


def test_request_headers_and_data_become_events_with_end_stream_once():
    client, server = pair()
    client.send_headers(1, HEADERS)
    client.send_data(1, b"abc", end_stream=True)
    events = server.receive(client.data_to_send())
    assert [type(e) for e in events] == [http2.RequestHeaders, http2.Data]
    assert (b":path", b"/p.S/M") in events[0].headers and not events[0].end_stream
    assert events[1].data == b"abc" and events[1].end_stream and events[1].flow_controlled_length == 3


def test_headers_only_request_ends_the_stream():
    client, server = pair()
    client.send_headers(1, HEADERS, end_stream=True)
    [event] = server.receive(client.data_to_send())
    assert isinstance(event, http2.RequestHeaders) and event.end_stream


def test_trailers_from_the_client_end_the_stream():
    client, server = pair()
    client.send_headers(1, HEADERS)
    client.send_headers(1, [("x-trailer", "1")], end_stream=True)
    events = server.receive(client.data_to_send())
    assert [type(e) for e in events] == [http2.RequestHeaders, http2.StreamEnded]


def test_response_headers_data_trailers_round_trip():
    client, server = pair()
    client.send_headers(1, HEADERS, end_stream=True)
    server.receive(client.data_to_send())
    server.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    server.send_data(1, b"\x00\x00\x00\x00\x02hi")
    server.send_headers(1, [(b"grpc-status", b"0")], end_stream=True)
    events = client.receive_data(server.bytes_to_send())
    kinds = [type(e) for e in events]
    assert kinds == [
        h2.events.ResponseReceived,
        h2.events.DataReceived,
        h2.events.TrailersReceived,
        h2.events.StreamEnded,
    ]
    assert events[1].data == b"\x00\x00\x00\x00\x02hi"
    assert dict(events[2].headers)["grpc-status"] == "0"


def test_send_window_follows_the_peer_and_window_updates_are_events():
    client, server = pair()
    client.send_headers(1, HEADERS, end_stream=True)
    server.receive(client.data_to_send())
    start = server.send_window(1)
    server.send_headers(1, [(b":status", b"200")])
    server.send_data(1, b"x" * 1000)
    assert server.send_window(1) == start - 1000
    client.receive_data(server.bytes_to_send())
    client.increment_flow_control_window(1000, stream_id=1)
    client.increment_flow_control_window(1000)  # the connection window too: send_window is the smaller
    events = server.receive(client.data_to_send())
    assert any(isinstance(e, http2.WindowOpened) and e.stream_id == 1 for e in events)
    assert server.send_window(1) == start


def test_acknowledged_bytes_reopen_the_peer_windows():
    client, server = pair()
    client.send_headers(1, HEADERS)
    chunk = b"y" * 16000
    for _ in range(200):  # 3.2 MB: more than half the stream window, so an update is due
        client.send_data(1, chunk)
    before = client.local_flow_control_window(1)
    events = server.receive(client.data_to_send())
    for event in events:
        if isinstance(event, http2.Data):
            server.acknowledge(event.stream_id, event.flow_controlled_length)
    client.receive_data(server.bytes_to_send())
    assert client.local_flow_control_window(1) > before


def test_ping_is_answered_by_the_driver():
    client, server = pair()
    client.ping(b"abcdefgh")
    assert server.receive(client.data_to_send()) == []
    events = client.receive_data(server.bytes_to_send())
    assert [e.ping_data for e in events if isinstance(e, h2.events.PingAckReceived)] == [b"abcdefgh"]


def test_reset_and_goaway_from_the_client_are_events():
    client, server = pair()
    client.send_headers(1, HEADERS)
    server.receive(client.data_to_send())
    client.reset_stream(1)
    assert [type(e) for e in server.receive(client.data_to_send())] == [http2.StreamReset]
    client.close_connection()
    assert [type(e) for e in server.receive(client.data_to_send())] == [http2.ConnectionEnded]


def test_close_sends_goaway_naming_the_last_stream():
    client, server = pair()
    client.send_headers(1, HEADERS, end_stream=True)
    client.send_headers(3, HEADERS, end_stream=True)
    server.receive(client.data_to_send())
    server.close()
    [event] = [e for e in client.receive_data(server.bytes_to_send()) if isinstance(e, h2.events.ConnectionTerminated)]
    assert event.last_stream_id == 3 and event.error_code == 0


@pytest.mark.parametrize(
    "after_preface",
    [
        b"\xff" * 64,  # garbage: a huge frame of an unknown type
        b"\x00\x00\x00\x01\x04\x00\x00\x00\x01",  # HEADERS before SETTINGS
        b"\x00\x00\x00\x04\x01\x00\x00\x00\x00",  # a SETTINGS ACK is not the client's SETTINGS
    ],
)
def test_a_preface_not_followed_by_settings_is_refused_at_once(after_preface):
    server = http2.server_connection()
    with pytest.raises(http2.ProtocolError):
        server.receive(PREFACE + after_preface)


def test_the_first_frame_check_works_byte_by_byte():
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    server = http2.server_connection()
    for byte in client.data_to_send():
        server.receive(bytes([byte]))
    garbage = http2.server_connection()
    with pytest.raises(http2.ProtocolError):
        for byte in PREFACE + b"\x00\x00\x00\x01\x04\x00\x00\x00\x01":
            garbage.receive(bytes([byte]))


def test_an_oversized_frame_is_refused_from_its_header():
    client, server = pair()
    with pytest.raises(http2.ProtocolError):
        server.receive(b"\x01\x00\x00\x00\x00\x00\x00\x00\x01")  # a 16 MiB DATA frame announced, nothing more

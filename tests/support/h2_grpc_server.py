"""A scriptable gRPC-over-HTTP/2 server for client tests, on asyncio and the `h2` library (the oracle).

Each request (path, whole request body) goes to ``handler(server, stream_id, path, body)``, which
answers through the server's helpers (``respond``, ``trailers_only``, ``reset``, ``send_messages``...)
or not at all. The server records what it saw: the most streams open at once, PING acks, GOAWAYs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.settings


def grpc_message(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class GrpcTestServer(asyncio.Protocol):
    def __init__(self, handler: Callable, settings: dict | None = None, on_stream_data: Callable | None = None) -> None:
        self.handler = handler
        self.on_stream_data = on_stream_data  # (server, stream_id, data) for streaming calls, as data arrives
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.settings = settings or {}
        self.transport: asyncio.Transport | None = None
        self.paths: dict[int, bytes] = {}
        self.bodies: dict[int, bytearray] = {}
        self.open_streams: set[int] = set()
        self.most_open = 0
        self.ping_acks = 0
        self.goaways: list[h2.events.ConnectionTerminated] = []
        self.window_updates = 0
        self.pending_sends: dict[int, bytes] = {}  # stream -> DATA waiting for the client's windows
        self.trailers_after: dict[int, list] = {}  # stream -> trailers to send once its pending DATA is out
        self.auto_ack = True  # give back received DATA at once (else the test calls ack)

    # -- answers --------------------------------------------------------------------------------

    def respond(self, stream_id: int, messages: list[bytes], status: int = 0, message: str = "") -> None:
        self.conn.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        self.send_data(stream_id, b"".join(grpc_message(m) for m in messages))
        self.finish(stream_id, status, message)

    def finish(self, stream_id: int, status: int, message: str = "", extra: list | None = None) -> None:
        trailers = [(b"grpc-status", str(status).encode())]
        if message:
            trailers.append((b"grpc-message", message.encode()))
        if stream_id in self.pending_sends:
            self.trailers_after[stream_id] = trailers + (extra or [])
            return
        self.conn.send_headers(stream_id, trailers + (extra or []), end_stream=True)
        self.open_streams.discard(stream_id)

    def trailers_only(self, stream_id: int, status: int, message: str) -> None:
        headers = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", str(status).encode())]
        self.conn.send_headers(stream_id, headers + [(b"grpc-message", message.encode())], end_stream=True)
        self.open_streams.discard(stream_id)

    def reset(self, stream_id: int, code: int) -> None:
        self.conn.reset_stream(stream_id, code)
        self.open_streams.discard(stream_id)

    def send_data(self, stream_id: int, data: bytes, pad_length: int | None = None) -> None:
        """Sends what the client's windows allow now and the rest as WINDOW_UPDATEs come."""
        self.pending_sends[stream_id] = self.pending_sends.get(stream_id, b"") + data
        self._send_pending(stream_id, pad_length)

    def flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.conn.data_to_send())

    # -- h2 -------------------------------------------------------------------------------------

    def _send_pending(self, stream_id: int, pad_length: int | None = None) -> None:
        data = self.pending_sends[stream_id]
        while data:
            room = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            room -= 0 if pad_length is None else pad_length + 1
            if room <= 0:
                break
            chunk, data = data[:room], data[room:]
            self.conn.send_data(stream_id, chunk, pad_length=pad_length)
        if data:
            self.pending_sends[stream_id] = data
            return
        del self.pending_sends[stream_id]
        if stream_id in self.trailers_after:
            self.conn.send_headers(stream_id, self.trailers_after.pop(stream_id), end_stream=True)
            self.open_streams.discard(stream_id)

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.conn.initiate_connection()
        if self.settings:
            self.conn.update_settings(self.settings)
        self.flush()

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            self._on_event(event)
        self.flush()

    def _on_event(self, event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = dict(event.headers)
            self.paths[event.stream_id] = headers[b":path"]
            self.bodies[event.stream_id] = bytearray()
            self.open_streams.add(event.stream_id)
            self.most_open = max(self.most_open, len(self.open_streams))
        elif isinstance(event, h2.events.DataReceived):
            self.bodies[event.stream_id] += event.data
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if self.on_stream_data is not None:
                self.on_stream_data(self, event.stream_id, event.data)
        elif isinstance(event, h2.events.StreamEnded):
            stream_id = event.stream_id
            self.handler(self, stream_id, self.paths[stream_id], bytes(self.bodies[stream_id]))
        elif isinstance(event, h2.events.StreamReset):
            self.open_streams.discard(event.stream_id)
        elif isinstance(event, h2.events.PingAckReceived):
            self.ping_acks += 1
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaways.append(event)
        elif isinstance(event, h2.events.WindowUpdated):
            self.window_updates += 1
            for stream_id in list(self.pending_sends):
                self._send_pending(stream_id)


async def serve(factory: Callable[[], GrpcTestServer]) -> tuple[asyncio.Server, int]:
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]

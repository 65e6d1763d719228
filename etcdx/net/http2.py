"""The sans-I/O HTTP/2 server connection driver: bytes in -> events out; calls -> bytes to send.

This is the seam a native codec replaces later: the gRPC layer sees only the events and methods
here, never the `h2` library. Header names and values are bytes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

ProtocolError = h2.exceptions.ProtocolError
StreamClosedError = h2.exceptions.StreamClosedError

# Receive windows opened up front so that clients are never throttled by our flow control.
INITIAL_STREAM_WINDOW = 4 * 1024 * 1024
CONNECTION_WINDOW = 64 * 1024 * 1024
MAX_CONCURRENT_STREAMS = 2**31 - 1

_PREFACE_LENGTH = 24
_FIRST_FRAME_END = _PREFACE_LENGTH + 9  # the preface and the 9-byte header of the first frame
_SETTINGS = 0x4
_ACK = 0x1


@dataclass(slots=True)
class RequestHeaders:
    stream_id: int
    headers: list[tuple[bytes, bytes]]
    end_stream: bool


@dataclass(slots=True)
class Data:
    stream_id: int
    data: bytes
    flow_controlled_length: int
    end_stream: bool


@dataclass(slots=True)
class StreamEnded:
    stream_id: int


@dataclass(slots=True)
class StreamReset:
    stream_id: int


@dataclass(slots=True)
class WindowOpened:
    """The peer granted more send window: on one stream, or on all (stream_id 0)."""

    stream_id: int


@dataclass(slots=True)
class ConnectionEnded:
    pass


class ServerConnection:
    def __init__(self) -> None:
        # Header validation and normalisation are off: the gRPC layer checks what it reads, and what it
        # sends is constant and already lowercase bytes (each check costs per call on the hot path).
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = h2.connection.H2Connection(config=config)
        # Invariant: True until the client's first frame after the preface is known to be SETTINGS.
        self._first_frame_pending = True
        self._head = b""
        self._h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: INITIAL_STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 16 * 1024 * 1024,
            },
        )
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)

    def receive(self, data: bytes) -> list:
        """Feeds bytes from the peer; returns the events. Raises ProtocolError on a broken peer, as soon as
        its bytes show it (garbage after the preface, a frame larger than we allow), not after buffering."""
        if self._first_frame_pending:
            self._check_first_frame(data)
        events = []
        for ev in self._h2.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                events.append(RequestHeaders(ev.stream_id, ev.headers, ev.stream_ended is not None))
            elif isinstance(ev, h2.events.DataReceived):
                events.append(Data(ev.stream_id, ev.data, ev.flow_controlled_length, ev.stream_ended is not None))
            elif isinstance(ev, h2.events.StreamEnded):
                if not events or not _ends(events[-1], ev.stream_id):
                    events.append(StreamEnded(ev.stream_id))
            elif isinstance(ev, h2.events.StreamReset):
                events.append(StreamReset(ev.stream_id))
            elif isinstance(ev, h2.events.WindowUpdated):
                events.append(WindowOpened(ev.stream_id))
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                events.append(WindowOpened(0))
            elif isinstance(ev, h2.events.ConnectionTerminated):
                events.append(ConnectionEnded())
        self._check_pending_frame()
        return events

    def _check_first_frame(self, data: bytes) -> None:
        """The client's connection preface is the magic string and then a SETTINGS frame (RFC 9113 3.4)."""
        self._head += data[: _FIRST_FRAME_END - len(self._head)]
        if len(self._head) < _FIRST_FRAME_END:
            return
        self._first_frame_pending = False
        frame_type, flags = self._head[_FIRST_FRAME_END - 6], self._head[_FIRST_FRAME_END - 5]
        if frame_type != _SETTINGS or flags & _ACK:
            raise ProtocolError("the connection preface is not followed by SETTINGS")
        self._head = b""

    def _check_pending_frame(self) -> None:
        """h2 buffers a whole frame before checking its length: refuse an oversized one from its header."""
        pending = self._h2.incoming_buffer._data
        if len(pending) >= 9 and int.from_bytes(pending[:3], "big") > self._h2.max_inbound_frame_size:
            raise ProtocolError("frame larger than SETTINGS_MAX_FRAME_SIZE")

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool = False) -> None:
        self._h2.send_headers(stream_id, headers, end_stream=end_stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Caller keeps len(data) <= min(send_window(stream_id), max_frame_size)."""
        self._h2.send_data(stream_id, data, end_stream=end_stream)

    def send_window(self, stream_id: int) -> int:
        return self._h2.local_flow_control_window(stream_id)

    @property
    def max_frame_size(self) -> int:
        return self._h2.max_outbound_frame_size

    def acknowledge(self, stream_id: int, length: int) -> None:
        """Consumed ``length`` flow-controlled bytes of ``stream_id``: the peer may send more (on the
        connection always; on the stream while it is open)."""
        if length:
            self._h2.acknowledge_received_data(length, stream_id)

    def reset(self, stream_id: int, error_code: int = 0) -> None:
        with contextlib.suppress(StreamClosedError, ProtocolError):
            self._h2.reset_stream(stream_id, error_code)

    def close(self) -> None:
        self._h2.close_connection()

    def bytes_to_send(self) -> bytes:
        return self._h2.data_to_send()


def _ends(event, stream_id: int) -> bool:
    """True when ``event`` already carries END_STREAM for ``stream_id``."""
    return getattr(event, "stream_id", None) == stream_id and getattr(event, "end_stream", False)

"""The sans-I/O HTTP/2 server connection driver (RFC 9113): bytes in -> events out; calls -> bytes to send.

The pure-Python twin of ``_h2conn`` (the readable specification); ``etcdx.net.http2`` is where callers get it.

Frames and HPACK come from the native codec module ``h2codec``, field checks from ``h2fields``; this module
keeps the connection's state: the preface check, settings, stream states and ids, flow control both ways, and
the errors. The gRPC layer sees only the events and methods here. Header names and values are bytes.

Bounds. Everything a peer can make this driver hold is bounded: open streams (``max_concurrent_streams``, at
most STREAM_CEILING; beyond it REFUSED_STREAM), the header bytes of open streams (HEADER_BUDGET; beyond it
REFUSED_STREAM), one header block (MAX_HEADER_LIST_SIZE compressed and decoded, MAX_HEADER_BLOCK_FRAMES
frames), and how fast the peer may reset streams it opened (a token bucket of RESET_BURST refilled at
RESET_RATE per second, and optionally one shared by every connection of the process, so that reconnecting does
not buy a fresh burst; when either is empty, GOAWAY ENHANCE_YOUR_CALM). Pings follow grpc-go's keepalive
enforcement: a ping sooner than ``ping_min_time`` after the previous one (PING_INTERVAL_WITHOUT_STREAMS when
no stream is open) is a strike unless we sent HEADERS or DATA since; more than MAX_PING_STRIKES strikes end
the connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings". ``queued_bytes`` says how much output waits for
``bytes_to_send``: the I/O shell stops reading while it is large (see grpc_server).

Errors. A connection error (the peer broke a rule that concerns the whole connection) queues GOAWAY with
its error code and raises ProtocolError from ``receive``; the connection is then over and every later
``receive`` raises it again. A stream error resets that stream with RST_STREAM; when the application knew
the stream it gets StreamReset. Sending on a stream that is not open for sending raises StreamClosedError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from etcdx._native import load

h2codec = load("h2codec")
h2fields = load("h2fields")

# Receive windows opened up front so that clients are never throttled by our flow control.
INITIAL_STREAM_WINDOW = 4 * 1024 * 1024
CONNECTION_WINDOW = 64 * 1024 * 1024
# etcd's --max-concurrent-streams defaults to 2**32-1 (unlimited); etcdx never lets one connection hold more
# than this many streams, whatever the flag says. Clients queue calls beyond what SETTINGS advertises.
STREAM_CEILING = 4096
MAX_HEADER_LIST_SIZE = 1024 * 1024  # decoded, as SETTINGS counts it; also bounds one compressed block
MAX_HEADER_BLOCK_FRAMES = 128  # HEADERS plus CONTINUATION frames in one header block
HEADER_BUDGET = 16 * 1024 * 1024  # header list bytes of all open streams of one connection, by default
RESET_BURST, RESET_RATE = 1000, 100.0  # streams the peer may reset: burst, then per second
MAX_PING_STRIKES = 2  # grpc-go's maxPingStrikes
PING_INTERVAL_WITHOUT_STREAMS = 2 * 3600.0  # grpc-go's defaultPingTimeout: the policy when no stream is open
HEADER_TABLE_SIZE = 4096
LOCAL_MAX_FRAME_SIZE = 16384

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_FIRST_FRAME_END = len(PREFACE) + h2codec.FRAME_HEADER_SIZE
_DEFAULT_WINDOW = 65535  # RFC 9113 6.9.2: every window before SETTINGS or WINDOW_UPDATE say otherwise
_MAX_WINDOW = 2**31 - 1
_MIN_FRAME_SIZE, _MAX_FRAME_SIZE = 16384, 2**24 - 1
_IGNORED_STREAMS = 1024  # streams ended by us whose late frames are ignored; older ones count as closed
_ENHANCE_YOUR_CALM = 0xB
_FEED_SLICE = 2048

# SETTINGS identifiers (RFC 9113 6.5.2; 8 is RFC 8441).
_HEADER_TABLE_SIZE, _ENABLE_PUSH, _MAX_CONCURRENT_STREAMS, _INITIAL_WINDOW_SIZE = 1, 2, 3, 4
_MAX_FRAME_SIZE_SETTING, _MAX_HEADER_LIST_SIZE, _ENABLE_CONNECT_PROTOCOL = 5, 6, 8

_CodecError = h2codec.H2CodecError
_encode_frame = h2codec.encode_frame
_SETTINGS_ACK = _encode_frame(h2codec.SETTINGS, h2codec.FLAG_ACK, 0, b"")


class ProtocolError(Exception):
    """The peer broke the protocol and the connection is over; ``error_code`` is what our GOAWAY said."""

    def __init__(self, message: str, error_code: int = h2codec.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.error_code = error_code


class StreamClosedError(ProtocolError):
    """The stream is not open for sending: reset by the peer or by us, or our side of it has ended."""


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


class _Stream:
    """An open stream: it is in ServerConnection._streams exactly while one of its sides is open."""

    __slots__ = ("send_window", "recv_window", "unacked", "remote_open", "local_open", "header_bytes")

    def __init__(self, send_window: int, remote_open: bool, header_bytes: int) -> None:
        self.header_bytes = header_bytes  # its request header list, as SETTINGS_MAX_HEADER_LIST_SIZE counts
        self.send_window = send_window  # may go negative when the peer lowers SETTINGS_INITIAL_WINDOW_SIZE
        self.recv_window = INITIAL_STREAM_WINDOW  # what the peer may still send before our next WINDOW_UPDATE
        self.unacked = 0  # acknowledged by the application, not yet granted back to the peer
        self.remote_open = remote_open  # the peer may still send HEADERS or DATA
        self.local_open = True  # we may still send


class Bucket(Protocol):
    """A token bucket (etcdx.net.token_bucket): ``take`` spends a token if there is one."""

    def take(self) -> bool: ...


class ServerConnection:
    def __init__(
        self,
        max_concurrent_streams: int,
        ping_min_time: float,
        clock: Callable[[], float],
        resets: Bucket,
        shared_resets: Bucket | None,
        header_budget: int,
    ) -> None:
        """``clock`` gives seconds (monotonic) for the ping policy; ``max_concurrent_streams`` above
        STREAM_CEILING counts as STREAM_CEILING (and is advertised so); ``resets`` is this connection's bucket
        of the streams the peer may reset (RESET_BURST, RESET_RATE), ``shared_resets`` the one it shares with
        others; ``header_budget`` bounds the header list bytes of the open streams together (HEADER_BUDGET by
        default). etcdx.net.http2.server_connection builds one with its defaults."""
        self._header_budget = header_budget
        self._max_streams = max_concurrent_streams = min(max_concurrent_streams, STREAM_CEILING)
        self._clock = clock
        self._ping_min_time = ping_min_time
        self._ping_strikes = 0
        self._last_ping_at: float | None = None
        self._sent_since_ping = False  # HEADERS or DATA went out since the last ping (grpc-go resets strikes)
        self._resets = resets
        self._shared_resets = shared_resets
        self._header_bytes = 0  # sum of header_bytes over _streams
        self._queued = 0  # bytes in _out
        self._reader = h2codec.FrameReader(LOCAL_MAX_FRAME_SIZE)
        self._decoder = h2codec.HpackDecoder(HEADER_TABLE_SIZE, MAX_HEADER_LIST_SIZE)
        self._decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE)
        self._encoder = h2codec.HpackEncoder()
        self._fields = h2fields.FieldChecker()
        self._out: list[bytes] = []
        self._events: list = []  # of the receive() under way
        self._streams: dict[int, _Stream] = {}
        # Invariant: every client stream id at or below this one is open, or closed for good.
        self._highest_stream_id = 0
        self._ignored: dict[int, None] = {}  # see _ignore_later_frames; oldest first, at most _IGNORED_STREAMS
        self._send_window = _DEFAULT_WINDOW  # the connection's, granted by the peer
        self._recv_window = CONNECTION_WINDOW  # the connection's, as the peer sees it
        self._unacked = 0  # connection bytes acknowledged by the application, not yet granted back
        self._peer_initial_window = _DEFAULT_WINDOW
        self._peer_max_frame_size = _MIN_FRAME_SIZE
        # Invariant: not None until the preface and the header of the client's first frame checked out.
        self._head: bytes | None = b""
        # A header block waiting for CONTINUATION frames: (stream id, END_STREAM, fragments, total size).
        self._block: tuple[int, bool, list[bytes], int] | None = None
        self._goaway_sent = False
        self._error: ProtocolError | None = None
        self._handlers = {
            h2codec.DATA: self._on_data,
            h2codec.HEADERS: self._on_headers,
            h2codec.PRIORITY: self._on_priority,
            h2codec.RST_STREAM: self._on_rst_stream,
            h2codec.SETTINGS: self._on_settings,
            h2codec.PUSH_PROMISE: self._on_push_promise,
            h2codec.PING: self._on_ping,
            h2codec.GOAWAY: self._on_goaway,
            h2codec.WINDOW_UPDATE: self._on_window_update,
            h2codec.CONTINUATION: self._on_continuation,
        }
        settings = [
            (_HEADER_TABLE_SIZE, HEADER_TABLE_SIZE),
            (_ENABLE_PUSH, 0),
            (_INITIAL_WINDOW_SIZE, INITIAL_STREAM_WINDOW),
            (_MAX_FRAME_SIZE_SETTING, LOCAL_MAX_FRAME_SIZE),
            (_ENABLE_CONNECT_PROTOCOL, 0),
            (_MAX_CONCURRENT_STREAMS, max_concurrent_streams),
            (_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE),
        ]
        self._emit(_encode_frame(h2codec.SETTINGS, 0, 0, h2codec.encode_settings(settings)))
        self._emit(_window_update(0, CONNECTION_WINDOW - _DEFAULT_WINDOW))

    # -- receiving -------------------------------------------------------------------------

    def receive(self, data: bytes) -> list:
        """Feeds bytes from the peer; returns the events. Raises ProtocolError on a broken peer as soon as
        its bytes show it (garbage after the preface, a frame larger than we allow), not after buffering."""
        if self._error is not None:
            raise self._error
        events = self._events = []
        try:
            if self._head is not None:
                data = self._check_preface(data)
            handlers = self._handlers
            # Split in slices so that a peer broken early in ``data`` costs the splitting of one slice, not all.
            for start in range(0, len(data), _FEED_SLICE):
                chunk = data if len(data) <= _FEED_SLICE else data[start : start + _FEED_SLICE]
                for frame_type, flags, stream_id, payload in self._reader.feed(chunk):
                    if self._block is not None and frame_type != h2codec.CONTINUATION:
                        raise _CodecError(h2codec.PROTOCOL_ERROR, "a header block interrupted by another frame")
                    handler = handlers.get(frame_type)
                    if handler is not None:  # frames of unknown types are ignored (RFC 9113 5.5)
                        handler(flags, stream_id, payload)
        except _CodecError as exc:
            raise self._connection_error(exc.error_code, str(exc)) from exc
        return events

    def _check_preface(self, data: bytes) -> bytes:
        """The client's connection preface is the magic string and then a SETTINGS frame (RFC 9113 3.4):
        returns what follows the magic once that is known, else b"" (it is held back until then)."""
        head = self._head + data
        if not head.startswith(PREFACE[: len(head)]):
            raise _CodecError(h2codec.PROTOCOL_ERROR, "invalid HTTP/2 connection preface")
        if len(head) < _FIRST_FRAME_END:
            self._head = head
            return b""
        frame_type, flags = head[_FIRST_FRAME_END - 6], head[_FIRST_FRAME_END - 5]
        if frame_type != h2codec.SETTINGS or flags & h2codec.FLAG_ACK:
            raise _CodecError(h2codec.PROTOCOL_ERROR, "the connection preface is not followed by SETTINGS")
        self._head = None
        return head[len(PREFACE) :]

    def _connection_error(self, error_code: int, message: str) -> ProtocolError:
        """A connection error: GOAWAY with ``error_code`` goes out and the connection is over."""
        if not self._goaway_sent:
            self._goaway_sent = True
            self._emit(_goaway(self._highest_stream_id, error_code, message.encode()[:256]))
        self._error = ProtocolError(message, error_code)
        return self._error

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        length = len(payload)  # the whole payload counts against the windows, padding included
        if length > self._recv_window:
            raise _CodecError(h2codec.FLOW_CONTROL_ERROR, "DATA beyond the connection receive window")
        self._recv_window -= length
        stream = self._streams.get(stream_id)
        if stream is None or not stream.remote_open:
            self._credit(length)  # nobody will acknowledge these bytes
            if stream is None:
                self._late_frame(stream_id, bool(flags & h2codec.FLAG_END_STREAM))
            else:
                self._stream_error(stream_id, h2codec.STREAM_CLOSED)  # DATA after the peer's END_STREAM
            return
        if length > stream.recv_window:
            raise _CodecError(h2codec.FLOW_CONTROL_ERROR, f"DATA beyond the receive window of stream {stream_id}")
        stream.recv_window -= length
        data = h2codec.strip_padding(flags, payload) if flags & h2codec.FLAG_PADDED else payload
        end_stream = bool(flags & h2codec.FLAG_END_STREAM)
        self._events.append(Data(stream_id, data, length, end_stream))
        if end_stream:
            self._end_remote(stream_id, stream)

    def _late_frame(self, stream_id: int, end_stream: bool) -> None:
        """DATA or HEADERS on a stream that is not open: ignored when we ended it while the peer could still
        send; else a connection error (idle stream: PROTOCOL_ERROR; closed: STREAM_CLOSED)."""
        if stream_id > self._highest_stream_id or not stream_id & 1:
            raise _CodecError(h2codec.PROTOCOL_ERROR, f"frame on idle stream {stream_id}")
        if stream_id not in self._ignored:
            raise _CodecError(h2codec.STREAM_CLOSED, f"frame on closed stream {stream_id}")
        if end_stream:
            del self._ignored[stream_id]  # the peer is done with it

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise _CodecError(h2codec.PROTOCOL_ERROR, "HEADERS on stream 0")
        fragment = h2codec.headers_fragment(flags, payload)
        if flags & h2codec.FLAG_END_HEADERS:
            self._on_header_block(stream_id, bool(flags & h2codec.FLAG_END_STREAM), fragment)
        else:
            self._block = (stream_id, bool(flags & h2codec.FLAG_END_STREAM), [fragment], len(fragment))

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._block is None or self._block[0] != stream_id:
            raise _CodecError(h2codec.PROTOCOL_ERROR, f"CONTINUATION on stream {stream_id} without a header block")
        _, end_stream, fragments, size = self._block
        size += len(payload)
        if size > MAX_HEADER_LIST_SIZE:
            raise _CodecError(_ENHANCE_YOUR_CALM, "header block larger than SETTINGS_MAX_HEADER_LIST_SIZE")
        if len(fragments) >= MAX_HEADER_BLOCK_FRAMES:
            raise _CodecError(_ENHANCE_YOUR_CALM, f"header block in more than {MAX_HEADER_BLOCK_FRAMES} frames")
        fragments.append(payload)
        self._block = (stream_id, end_stream, fragments, size)
        if flags & h2codec.FLAG_END_HEADERS:
            self._block = None
            self._on_header_block(stream_id, end_stream, b"".join(fragments))

    def _on_header_block(self, stream_id: int, end_stream: bool, block: bytes) -> None:
        headers = self._decoder.decode(block)  # always decoded: the HPACK table must follow every block
        # (the decoder stops at MAX_HEADER_LIST_SIZE as it decodes: a few bytes naming one large table entry
        # again and again cannot expand past it)
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._on_trailers(stream_id, stream, end_stream, headers)
        elif not stream_id & 1:
            raise _CodecError(h2codec.PROTOCOL_ERROR, f"HEADERS on stream {stream_id}, an id clients do not use")
        elif stream_id <= self._highest_stream_id:
            self._late_frame(stream_id, end_stream)
        else:
            self._highest_stream_id = stream_id
            self._on_request(stream_id, end_stream, headers, self._decoder.list_size)

    def _on_request(
        self, stream_id: int, end_stream: bool, headers: list[tuple[bytes, bytes]], header_bytes: int
    ) -> None:
        """``header_bytes``: the list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 6.5.2)."""
        if self._goaway_sent:
            if not end_stream:  # above the last stream id our GOAWAY named: never processed (RFC 9113 6.8)
                self._ignore_later_frames(stream_id)
            return
        if len(self._streams) >= self._max_streams or self._header_bytes + header_bytes > self._header_budget:
            self._refuse(stream_id, end_stream, h2codec.REFUSED_STREAM)
        elif self._fields.request_problem(headers) is not None:
            self._refuse(stream_id, end_stream, h2codec.PROTOCOL_ERROR)
        else:
            self._streams[stream_id] = _Stream(self._peer_initial_window, not end_stream, header_bytes)
            self._header_bytes += header_bytes
            self._events.append(RequestHeaders(stream_id, headers, end_stream))

    def _on_trailers(self, stream_id: int, stream: _Stream, end_stream: bool, headers: list) -> None:
        """A header section on an open stream ends the peer's side: trailers (RFC 9113 8.1)."""
        if not stream.remote_open:
            self._stream_error(stream_id, h2codec.STREAM_CLOSED)
        elif not end_stream or self._fields.trailers_problem(headers) is not None:
            self._stream_error(stream_id, h2codec.PROTOCOL_ERROR)
        else:
            self._events.append(StreamEnded(stream_id))
            self._end_remote(stream_id, stream)

    def _on_priority(self, flags: int, stream_id: int, payload: bytes) -> None:
        """Priority signals are ignored (RFC 9113 5.3.2); the frame is still checked."""
        if stream_id == 0:
            raise _CodecError(h2codec.PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            raise _CodecError(h2codec.FRAME_SIZE_ERROR, f"PRIORITY payload of {len(payload)} bytes, not 5")

    def _on_rst_stream(self, flags: int, stream_id: int, payload: bytes) -> None:
        h2codec.parse_rst_stream(payload)
        if stream_id == 0:
            raise _CodecError(h2codec.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if self._forget(stream_id) is not None:
            self._spend_reset_token()
            self._events.append(StreamReset(stream_id))
        elif stream_id > self._highest_stream_id or not stream_id & 1:
            raise _CodecError(h2codec.PROTOCOL_ERROR, f"RST_STREAM on idle stream {stream_id}")
        else:
            self._ignored.pop(stream_id, None)  # the peer sends no more on it

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise _CodecError(h2codec.PROTOCOL_ERROR, f"SETTINGS on stream {stream_id}")
        if flags & h2codec.FLAG_ACK:
            if payload:
                raise _CodecError(h2codec.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        opened = False
        for identifier, value in h2codec.parse_settings(payload):
            if identifier == _INITIAL_WINDOW_SIZE:
                opened = self._set_peer_initial_window(value) or opened
            elif identifier == _MAX_FRAME_SIZE_SETTING:
                if not _MIN_FRAME_SIZE <= value <= _MAX_FRAME_SIZE:
                    raise _CodecError(h2codec.PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value} out of range")
                self._peer_max_frame_size = value
            elif identifier in (_ENABLE_PUSH, _ENABLE_CONNECT_PROTOCOL) and value > 1:
                raise _CodecError(h2codec.PROTOCOL_ERROR, f"SETTINGS {identifier} must be 0 or 1, not {value}")
            # The rest do not concern this server: the encoder never uses the dynamic table (so the
            # peer's HEADER_TABLE_SIZE holds), we open no streams, MAX_HEADER_LIST_SIZE is advisory.
        self._emit(_SETTINGS_ACK)
        if opened:
            self._events.append(WindowOpened(0))

    def _set_peer_initial_window(self, value: int) -> bool:
        """Applies a new SETTINGS_INITIAL_WINDOW_SIZE to every open stream (RFC 9113 6.9.2); True if it grew."""
        if value > _MAX_WINDOW:
            raise _CodecError(h2codec.FLOW_CONTROL_ERROR, f"SETTINGS_INITIAL_WINDOW_SIZE {value} above 2**31-1")
        delta = value - self._peer_initial_window
        self._peer_initial_window = value
        for stream in self._streams.values():
            stream.send_window += delta
            if stream.send_window > _MAX_WINDOW:
                raise _CodecError(h2codec.FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window")
        return delta > 0

    def _on_push_promise(self, flags: int, stream_id: int, payload: bytes) -> None:
        raise _CodecError(h2codec.PROTOCOL_ERROR, "PUSH_PROMISE from a client")

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise _CodecError(h2codec.PROTOCOL_ERROR, f"PING on stream {stream_id}")
        if len(payload) != 8:
            raise _CodecError(h2codec.FRAME_SIZE_ERROR, f"PING payload of {len(payload)} bytes, not 8")
        if not flags & h2codec.FLAG_ACK:
            self._emit(_encode_frame(h2codec.PING, h2codec.FLAG_ACK, 0, payload))
            self._police_ping()

    def _police_ping(self) -> None:
        """grpc-go's keepalive EnforcementPolicy (MinTime, PermitWithoutStream false) for a ping just answered."""
        now = self._clock()
        last, self._last_ping_at = self._last_ping_at, now
        if self._sent_since_ping:
            self._sent_since_ping = False
            self._ping_strikes = 0
            return
        min_time = self._ping_min_time if self._streams else PING_INTERVAL_WITHOUT_STREAMS
        if last is not None and now - last < min_time:
            self._ping_strikes += 1
        if self._ping_strikes > MAX_PING_STRIKES:
            raise _CodecError(_ENHANCE_YOUR_CALM, "too_many_pings")

    def _on_goaway(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise _CodecError(h2codec.PROTOCOL_ERROR, f"GOAWAY on stream {stream_id}")
        h2codec.parse_goaway(payload)
        self._events.append(ConnectionEnded())

    def _on_window_update(self, flags: int, stream_id: int, payload: bytes) -> None:
        increment = h2codec.parse_window_update(payload)
        if stream_id == 0:
            if increment == 0:
                raise _CodecError(h2codec.PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection")
            self._send_window += increment
            if self._send_window > _MAX_WINDOW:
                raise _CodecError(h2codec.FLOW_CONTROL_ERROR, "WINDOW_UPDATE overflows the connection window")
            self._events.append(WindowOpened(0))
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self._highest_stream_id or not stream_id & 1:
                raise _CodecError(h2codec.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {stream_id}")
            return  # closed: an update sent before the peer saw the end is harmless (RFC 9113 5.1)
        if increment == 0:
            self._stream_error(stream_id, h2codec.PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > _MAX_WINDOW:
            self._stream_error(stream_id, h2codec.FLOW_CONTROL_ERROR)
        elif stream.local_open:
            self._events.append(WindowOpened(stream_id))

    def _spend_reset_token(self) -> None:
        """The peer reset a stream it had opened: allowed while both its own and the shared bucket have tokens."""
        if not self._resets.take() or (self._shared_resets is not None and not self._shared_resets.take()):
            raise _CodecError(_ENHANCE_YOUR_CALM, "too many stream resets")

    def _forget(self, stream_id: int) -> _Stream | None:
        """Removes a stream from the open ones (None if it was not open)."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._header_bytes -= stream.header_bytes
        return stream

    def _end_remote(self, stream_id: int, stream: _Stream) -> None:
        stream.remote_open = False
        if not stream.local_open:
            self._forget(stream_id)

    def _stream_error(self, stream_id: int, error_code: int) -> None:
        """Resets an open stream the peer broke a rule on; the application hears of it as StreamReset."""
        self.reset(stream_id, error_code)
        self._events.append(StreamReset(stream_id))

    def _refuse(self, stream_id: int, end_stream: bool, error_code: int) -> None:
        """Resets a stream the application never hears of."""
        self._emit(_rst_stream(stream_id, error_code))
        if not end_stream:
            self._ignore_later_frames(stream_id)

    def _ignore_later_frames(self, stream_id: int) -> None:
        """We ended ``stream_id`` while the peer could still send on it: what it sent meanwhile is ignored."""
        self._ignored[stream_id] = None
        if len(self._ignored) > _IGNORED_STREAMS:
            del self._ignored[next(iter(self._ignored))]

    # -- receive flow control ----------------------------------------------------------------

    def acknowledge(self, stream_id: int, length: int) -> None:
        """Consumed ``length`` flow-controlled bytes of ``stream_id``: the peer may send more (on the
        connection always; on the stream while the peer may still send on it).

        A window is granted back once what waits to be granted is at least what the peer has left, so a
        peer whose bytes are consumed at once gets one WINDOW_UPDATE per half window."""
        if not length:
            return
        self._credit(length)
        stream = self._streams.get(stream_id)
        if stream is not None and stream.remote_open:
            stream.unacked += length
            if stream.unacked >= stream.recv_window:
                increment = min(stream.unacked, _MAX_WINDOW - stream.recv_window)
                stream.recv_window += increment
                stream.unacked = 0
                self._emit(_window_update(stream_id, increment))

    def _credit(self, length: int) -> None:
        self._unacked += length
        if self._unacked >= self._recv_window:
            increment = min(self._unacked, _MAX_WINDOW - self._recv_window)
            self._recv_window += increment
            self._unacked = 0
            self._emit(_window_update(0, increment))

    # -- sending -----------------------------------------------------------------------------

    def _sendable(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or not stream.local_open:
            raise StreamClosedError(f"stream {stream_id} is not open for sending")
        return stream

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool = False) -> None:
        """One HEADERS frame, with CONTINUATION frames when the block exceeds the peer's max frame size.
        Names are lowercase bytes; the response's first section carries :status, a later one is trailers."""
        stream = self._sendable(stream_id)
        self._sent_since_ping = True
        self._emit_block(stream_id, self._encoder.encode(headers), end_stream)
        if end_stream:
            self._end_local(stream_id, stream)

    def _emit_block(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        """A header block as HEADERS, and CONTINUATION frames when it exceeds the peer's max frame size."""
        flags = h2codec.FLAG_END_STREAM if end_stream else 0
        limit = self._peer_max_frame_size
        if len(block) <= limit:
            self._emit(_encode_frame(h2codec.HEADERS, flags | h2codec.FLAG_END_HEADERS, stream_id, block))
            return
        self._emit(_encode_frame(h2codec.HEADERS, flags, stream_id, block[:limit]))
        for start in range(limit, len(block), limit):
            flags = h2codec.FLAG_END_HEADERS if start + limit >= len(block) else 0
            self._emit(_encode_frame(h2codec.CONTINUATION, flags, stream_id, block[start : start + limit]))

    def send_response(
        self,
        stream_id: int,
        headers: list[tuple[bytes, bytes]],
        head: bytes,
        body: bytes,
        trailers: list[tuple[bytes, bytes]],
    ) -> bool:
        """A whole response at once, ending the stream: ``headers``, one DATA frame of ``head`` + ``body``,
        ``trailers``. The same frames as send_headers, send_data and send_headers(end_stream=True) (built by
        the codec in one piece), when head + body fits the send window and one frame of the peer's; else
        returns False and nothing is sent."""
        stream = self._sendable(stream_id)
        size = len(head) + len(body)
        if size > stream.send_window or size > self._send_window or size > self._peer_max_frame_size:
            return False
        stream.send_window -= size
        self._send_window -= size
        self._sent_since_ping = True
        encode = self._encoder.encode
        header_block, trailer_block = encode(headers), encode(trailers)
        limit = self._peer_max_frame_size
        if len(header_block) <= limit and len(trailer_block) <= limit:
            self._emit(h2codec.encode_response(stream_id, header_block, head, body, trailer_block))
        else:
            self._emit_block(stream_id, header_block, False)
            self._emit(_encode_frame(h2codec.DATA, 0, stream_id, head + body))
            self._emit_block(stream_id, trailer_block, True)
        self._end_local(stream_id, stream)
        return True

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Sends ``data`` in DATA frames of at most max_frame_size bytes. The caller keeps len(data) <=
        send_window(stream_id) (ValueError otherwise: nothing is sent)."""
        stream = self._sendable(stream_id)
        size = len(data)
        if size > stream.send_window or size > self._send_window:
            raise ValueError(f"{size} bytes exceed the send window of stream {stream_id}")
        stream.send_window -= size
        self._send_window -= size
        self._sent_since_ping = True
        flags = h2codec.FLAG_END_STREAM if end_stream else 0
        limit = self._peer_max_frame_size
        if size <= limit:
            self._emit(_encode_frame(h2codec.DATA, flags, stream_id, data))
        else:
            view = memoryview(data)
            for start in range(0, size, limit):
                last = start + limit >= size
                chunk = bytes(view[start : start + limit])
                self._emit(_encode_frame(h2codec.DATA, flags if last else 0, stream_id, chunk))
        if end_stream:
            self._end_local(stream_id, stream)

    def _end_local(self, stream_id: int, stream: _Stream) -> None:
        stream.local_open = False
        if not stream.remote_open:
            self._forget(stream_id)

    def send_window(self, stream_id: int) -> int:
        """How many bytes send_data may send on ``stream_id`` now (the smaller of the stream's and the
        connection's windows; negative after the peer shrank its initial window)."""
        return min(self._sendable(stream_id).send_window, self._send_window)

    @property
    def max_frame_size(self) -> int:
        """The peer's SETTINGS_MAX_FRAME_SIZE: the largest DATA frame it accepts."""
        return self._peer_max_frame_size

    def reset(self, stream_id: int, error_code: int = 0) -> None:
        """Resets ``stream_id`` with RST_STREAM; nothing happens if it is not open."""
        stream = self._forget(stream_id)
        if stream is None:
            return
        self._emit(_rst_stream(stream_id, error_code))
        if stream.remote_open:
            self._ignore_later_frames(stream_id)

    def ping(self, opaque: bytes) -> None:
        """Sends a PING with 8 bytes of ``opaque`` data (its ACK is not reported: any frame shows the peer lives)."""
        self._emit(_encode_frame(h2codec.PING, 0, 0, opaque))

    def close(self) -> None:
        """Sends GOAWAY(NO_ERROR) naming the last stream processed; requests above it are ignored. Open
        streams may still finish. After a connection error (its GOAWAY is out already) nothing is sent."""
        if not self._goaway_sent:
            self._goaway_sent = True
            self._emit(_goaway(self._highest_stream_id, h2codec.NO_ERROR, b""))

    def _emit(self, frame: bytes) -> None:
        self._out.append(frame)
        self._queued += len(frame)

    @property
    def queued_bytes(self) -> int:
        """Bytes produced and not yet taken by ``bytes_to_send``."""
        return self._queued

    def bytes_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._queued = 0
        return data


def _window_update(stream_id: int, increment: int) -> bytes:
    return _encode_frame(h2codec.WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big"))


def _rst_stream(stream_id: int, error_code: int) -> bytes:
    return _encode_frame(h2codec.RST_STREAM, 0, stream_id, error_code.to_bytes(4, "big"))


def _goaway(last_stream_id: int, error_code: int, debug: bytes) -> bytes:
    payload = last_stream_id.to_bytes(4, "big") + error_code.to_bytes(4, "big") + debug
    return _encode_frame(h2codec.GOAWAY, 0, 0, payload)

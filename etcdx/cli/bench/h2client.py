"""A lean gRPC client connection over HTTP/2 (RFC 9113) on an asyncio Protocol, for `etcdx bench`.

Frames and HPACK come from the native codec `h2codec`; this module is the client side of the connection:
preface and SETTINGS (ours: no push, large windows; theirs: acked and applied), PING acks, flow control
both ways, the server's MAX_CONCURRENT_STREAMS (calls beyond it wait), GOAWAY and RST_STREAM.

A call is a stream id and callbacks, not a coroutine: ``unary(path, message, done)`` calls
``done(error, body)`` once, with error None (grpc-status 0) or a report label "CODE_NAME: message" and
body the response DATA (gRPC length-prefixed); ``open_stream`` starts a bidirectional call whose
messages go to ``on_message`` and whose end goes to ``done``. Callbacks run inside ``data_received``, so
requests they make leave in the same write: frames are joined and written once per read, or once per
loop iteration for calls started outside a read.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from etcdx._native import load
from etcdx.cli.bench.grpc_wire import frame_message, label, request_headers, split_messages, trailers_error

h2 = load("h2codec")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_WINDOW = 65535
MAX_WINDOW = (1 << 31) - 1
MAX_STREAM_ID = (1 << 31) - 1
RECEIVE_WINDOW = 1 << 30  # what we let the server send, per stream and per connection
SETTINGS_HEADER_TABLE_SIZE = 1
SETTINGS_ENABLE_PUSH = 2
SETTINGS_MAX_CONCURRENT_STREAMS = 3
SETTINGS_INITIAL_WINDOW_SIZE = 4
SETTINGS_MAX_FRAME_SIZE = 5
UNLIMITED_STREAMS = 1 << 32
ERROR_NAMES = (
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
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)
UNAVAILABLE, INTERNAL, CANCELLED = 14, 13, 1

Done = Callable[[str | None, bytes], None]
OnMessage = Callable[[bytes], None]


def _error_name(code: int) -> str:
    return ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else f"0x{code:x}"


class ProtocolViolation(Exception):
    """A connection error we detect (RFC 9113 §5.4.1): the connection is closed with GOAWAY(error_code)."""

    def __init__(self, error_code: int, reason: str) -> None:
        super().__init__(reason)
        self.error_code = error_code


class Call:
    """One stream. Invariant: in ``Connection.calls`` from its HEADERS until it ends (trailers, reset, loss)."""

    __slots__ = (
        "stream_id",
        "done",
        "on_message",
        "body",
        "buffer",
        "http_status",
        "send_window",
        "pending",
        "pending_at",
        "end_after_pending",
        "unacked",
    )

    def __init__(self, done: Done, on_message: OnMessage | None) -> None:
        self.stream_id = 0
        self.done = done
        self.on_message = on_message  # None: a unary call, its body is kept whole
        self.body = b""
        self.buffer = bytearray() if on_message else None  # a streaming call's bytes not yet a whole message
        self.http_status: bytes | None = None  # set by the response HEADERS; None until then
        self.send_window = 0
        self.pending = b""  # DATA bytes waiting for window, from pending_at on
        self.pending_at = 0
        self.end_after_pending = False
        self.unacked = 0  # DATA bytes received and not yet given back by a stream WINDOW_UPDATE


class Connection(asyncio.Protocol):
    """One HTTP/2 connection to a gRPC server, carrying many concurrent calls.

    ``on_unusable(connection)`` is called once when no new call may start here (GOAWAY, stream ids used
    up, connection lost or failed); calls already running on it finish or fail on their own.
    """

    def __init__(self, authority: str, secure: bool, on_unusable: Callable[[Connection], None] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.on_unusable = on_unusable
        self.calls: dict[int, Call] = {}
        self.queued: deque[tuple[Call, bytes, bytes, bool]] = deque()  # waiting for MAX_CONCURRENT_STREAMS
        self.blocked: deque[Call] = deque()  # calls with DATA waiting for send window, in order
        self.transport: asyncio.Transport | None = None
        self.reader = h2.FrameReader()
        self.decoder = h2.HpackDecoder()
        self.encoder = h2.HpackEncoder()
        # the encoder's first block carries its dynamic table size update (to 0): that block goes out first
        self.first_block_prefix = self.encoder.encode([])
        self.scheme = b"https" if secure else b"http"
        self.authority = authority.encode()
        self.blocks: dict[bytes, bytes] = {}  # path -> request header block (fixed: the encoder is stateless)
        self.next_stream_id = 1
        self.max_streams = UNLIMITED_STREAMS
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = 16384
        self.send_window = DEFAULT_WINDOW  # the connection's send window the server gave us
        self.unacked = 0  # DATA bytes received on the connection and not yet given back
        self.headers_in_progress: tuple[int, int, list[bytes]] | None = None  # (stream, flags, fragments)
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.receiving = False
        self.usable = True
        self.closed_reason: str | None = None
        # resolves to None at the server's first SETTINGS, or to the reason the connection ended before them
        self.ready: asyncio.Future[str | None] = self.loop.create_future()

    # -- calls ----------------------------------------------------------------------------------

    def unary(self, path: bytes, message: bytes, done: Done) -> None:
        """Starts a unary call; ``done(error, body)`` is called once (never from inside this method)."""
        self._start(Call(done, None), path, b"\x00" + len(message).to_bytes(4, "big") + message, True)

    def open_stream(self, path: bytes, on_message: OnMessage, done: Done) -> Call:
        """Starts a bidirectional streaming call; send on it with ``send`` and end it with ``cancel``."""
        call = Call(done, on_message)
        self._start(call, path, b"", False)
        return call

    def send(self, call: Call, message: bytes) -> None:
        """Sends one message on a streaming call (dropped if the call has already ended)."""
        if call.stream_id and self.calls.get(call.stream_id) is call:
            self._send_data(call, frame_message(message), False)
            self._schedule_flush()
        elif call.stream_id == 0 and self.usable:  # still queued for a stream slot
            for index, (queued, path, data, end) in enumerate(self.queued):
                if queued is call:
                    self.queued[index] = (queued, path, data + frame_message(message), end)
                    break

    def cancel(self, call: Call) -> None:
        """Ends a call from our side with RST_STREAM(CANCEL); its ``done`` is not called."""
        if call.stream_id and self.calls.pop(call.stream_id, None) is call:
            self._forget_blocked(call)
            self.out.append(h2.encode_frame(h2.RST_STREAM, 0, call.stream_id, h2.CANCEL.to_bytes(4, "big")))
            self._schedule_flush()
            self._start_queued()
        elif call.stream_id == 0:
            self.queued = deque(entry for entry in self.queued if entry[0] is not call)

    def close(self) -> None:
        """GOAWAY(NO_ERROR) and close; calls still running fail with UNAVAILABLE."""
        self._unusable("connection closed by the client")
        if self.transport is not None and not self.transport.is_closing():
            self.out.append(h2.encode_frame(h2.GOAWAY, 0, 0, (0).to_bytes(8, "big")))
            self._flush()
            self.transport.close()

    def _start(self, call: Call, path: bytes, data: bytes, end: bool) -> None:
        if not self.usable:
            reason = self.closed_reason or "connection is going away"
            self.loop.call_soon(call.done, label(UNAVAILABLE, reason), b"")
            return
        if len(self.calls) >= self.max_streams:
            self.queued.append((call, path, data, end))
            return
        stream_id = self.next_stream_id
        if stream_id > MAX_STREAM_ID:
            self._unusable("stream ids used up")
            self.loop.call_soon(call.done, label(UNAVAILABLE, "stream ids used up"), b"")
            return
        self.next_stream_id = stream_id + 2
        call.stream_id = stream_id
        call.send_window = self.peer_initial_window
        self.calls[stream_id] = call
        block = self.blocks.get(path)
        if block is None:
            block = self.blocks[path] = self.encoder.encode(request_headers(self.scheme, self.authority, path))
        if self.first_block_prefix:
            block = self.first_block_prefix + block
            self.first_block_prefix = b""
        flags = h2.FLAG_END_HEADERS | (h2.FLAG_END_STREAM if end and not data else 0)
        self.out.append(h2.encode_frame(h2.HEADERS, flags, stream_id, block))
        if data:
            size = len(data)
            if size <= call.send_window and size <= self.send_window and size <= self.peer_max_frame:
                call.send_window -= size  # the usual case, inline: all of it fits in one DATA frame now
                self.send_window -= size
                self.out.append(h2.encode_frame(h2.DATA, h2.FLAG_END_STREAM if end else 0, stream_id, data))
            else:
                self._send_data(call, data, end)
        if not self.flush_scheduled and not self.receiving:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _start_queued(self) -> None:
        while self.queued and len(self.calls) < self.max_streams and self.usable:
            call, path, data, end = self.queued.popleft()
            self._start(call, path, data, end)

    # -- sending --------------------------------------------------------------------------------

    def _send_data(self, call: Call, data: bytes, end: bool) -> None:
        size = len(data)
        if not call.pending and size <= call.send_window and size <= self.send_window and size <= self.peer_max_frame:
            call.send_window -= size
            self.send_window -= size
            self.out.append(h2.encode_frame(h2.DATA, h2.FLAG_END_STREAM if end else 0, call.stream_id, data))
            return
        if not call.pending:  # Invariant: a call is in ``blocked`` exactly when it has pending bytes
            self.blocked.append(call)
        call.pending = call.pending[call.pending_at :] + data
        call.pending_at = 0
        call.end_after_pending = end
        self._send_blocked()

    def _send_blocked(self) -> None:
        """Sends what the windows allow of the waiting DATA, oldest call first."""
        while self.blocked and self.send_window > 0:
            call = self.blocked[0]
            stalled = False
            while call.pending_at < len(call.pending):
                size = min(len(call.pending) - call.pending_at, call.send_window, self.send_window, self.peer_max_frame)
                if size <= 0:
                    stalled = True
                    break
                chunk = call.pending[call.pending_at : call.pending_at + size]
                call.pending_at += size
                call.send_window -= size
                self.send_window -= size
                last = call.pending_at == len(call.pending)
                flags = h2.FLAG_END_STREAM if last and call.end_after_pending else 0
                self.out.append(h2.encode_frame(h2.DATA, flags, call.stream_id, chunk))
            if stalled:
                # this call waits for its own stream window; others may still go
                self.blocked.rotate(-1)
                if all(c.send_window <= 0 for c in self.blocked):
                    break
                continue
            call.pending, call.pending_at = b"", 0
            self.blocked.popleft()
        self._schedule_flush()

    def _forget_blocked(self, call: Call) -> None:
        if call.pending:
            call.pending, call.pending_at = b"", 0
            self.blocked = deque(c for c in self.blocked if c is not call)

    def _schedule_flush(self) -> None:
        if not self.flush_scheduled and not self.receiving:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None and not self.transport.is_closing():
            out, self.out = self.out, []
            self.transport.write(b"".join(out))

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        settings = [(SETTINGS_ENABLE_PUSH, 0), (SETTINGS_INITIAL_WINDOW_SIZE, RECEIVE_WINDOW)]
        greeting = [
            PREFACE,
            h2.encode_frame(h2.SETTINGS, 0, 0, h2.encode_settings(settings)),
            h2.encode_frame(h2.WINDOW_UPDATE, 0, 0, (RECEIVE_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big")),
        ]
        self.out[:0] = greeting
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.receiving = True
        try:
            for frame_type, flags, stream_id, payload in self.reader.feed(data):
                if self.headers_in_progress is not None:
                    self._continuation(frame_type, flags, stream_id, payload)
                elif frame_type == h2.DATA:
                    self._on_data(flags, stream_id, payload)
                elif frame_type == h2.HEADERS:
                    fragment = h2.headers_fragment(flags, payload)
                    if flags & h2.FLAG_END_HEADERS:
                        self._on_headers(flags, stream_id, fragment)
                    else:
                        self.headers_in_progress = (stream_id, flags, [fragment])
                else:
                    self._on_control(frame_type, flags, stream_id, payload)
        except h2.H2CodecError as exc:
            self._connection_error(exc.error_code, str(exc))
        except ProtocolViolation as exc:
            self._connection_error(exc.error_code, str(exc))
        finally:
            self.receiving = False
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self.closed_reason or f"connection lost: {exc or 'closed by the server'}"
        self.closed_reason = reason
        self._unusable(reason)
        self._fail_all(label(UNAVAILABLE, reason))
        if not self.ready.done():
            self.ready.set_result(reason)

    # -- frames ---------------------------------------------------------------------------------

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        size = len(payload)
        self.unacked += size
        if self.unacked >= RECEIVE_WINDOW // 2:
            self.out.append(h2.encode_frame(h2.WINDOW_UPDATE, 0, 0, self.unacked.to_bytes(4, "big")))
            self.unacked = 0
        call = self.calls.get(stream_id)
        if call is None:
            self._check_closed_stream(stream_id)
            return
        if flags & h2.FLAG_PADDED:
            payload = h2.strip_padding(flags, payload)
        if call.on_message is None:
            call.body = call.body + payload if call.body else payload
        else:
            call.buffer += payload
            for message in split_messages(call.buffer):
                call.on_message(message)
            if self.calls.get(stream_id) is not call:  # on_message cancelled it
                return
        call.unacked += size
        if call.unacked >= RECEIVE_WINDOW // 2:
            self.out.append(h2.encode_frame(h2.WINDOW_UPDATE, 0, stream_id, call.unacked.to_bytes(4, "big")))
            call.unacked = 0
        if flags & h2.FLAG_END_STREAM:
            self._end(call, label(INTERNAL, "server closed the stream without sending trailers"))

    def _on_headers(self, flags: int, stream_id: int, block: bytes) -> None:
        headers = self.decoder.decode(block)  # always: the decoder's dynamic table follows every block
        call = self.calls.get(stream_id)
        if call is None:
            self._check_closed_stream(stream_id)
            return
        if flags & h2.FLAG_END_STREAM:
            self._end(call, None if (b"grpc-status", b"0") in headers else trailers_error(headers, call.http_status))
        elif call.http_status is None:
            if (b":status", b"200") in headers:
                call.http_status = b"200"
            else:
                call.http_status = next((value for name, value in headers if name == b":status"), b"")
        else:
            raise ProtocolViolation(h2.PROTOCOL_ERROR, "HEADERS after the response headers without END_STREAM")

    def _continuation(self, frame_type: int, flags: int, stream_id: int, payload: bytes) -> None:
        first_stream, first_flags, fragments = self.headers_in_progress
        if frame_type != h2.CONTINUATION or stream_id != first_stream:
            raise ProtocolViolation(h2.PROTOCOL_ERROR, "expected CONTINUATION of an open header block")
        fragments.append(payload)
        if flags & h2.FLAG_END_HEADERS:
            self.headers_in_progress = None
            self._on_headers(first_flags, first_stream, b"".join(fragments))

    def _end(self, call: Call, error: str | None) -> None:
        del self.calls[call.stream_id]
        if call.pending:
            self._forget_blocked(call)
        if self.queued:
            self._start_queued()
        call.done(error, call.body)
        if not self.usable and not self.calls and self.transport is not None:
            self.close()

    def _check_closed_stream(self, stream_id: int) -> None:
        """A frame for a stream we do not track is fine if we opened that stream earlier (it ended)."""
        if stream_id == 0 or stream_id % 2 == 0 or stream_id >= self.next_stream_id:
            raise ProtocolViolation(h2.PROTOCOL_ERROR, f"frame on stream {stream_id}, which we never opened")

    def _on_control(self, frame_type: int, flags: int, stream_id: int, payload: bytes) -> None:
        if frame_type == h2.WINDOW_UPDATE:
            self._on_window_update(stream_id, h2.parse_window_update(payload))
        elif frame_type == h2.PING:
            if stream_id != 0:
                raise ProtocolViolation(h2.PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                raise ProtocolViolation(h2.FRAME_SIZE_ERROR, "PING payload is not 8 bytes")
            if not flags & h2.FLAG_ACK:
                self.out.append(h2.encode_frame(h2.PING, h2.FLAG_ACK, 0, payload))
        elif frame_type == h2.SETTINGS:
            if stream_id != 0:
                raise ProtocolViolation(h2.PROTOCOL_ERROR, "SETTINGS on a stream")
            if flags & h2.FLAG_ACK:
                if payload:
                    raise ProtocolViolation(h2.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            else:
                self._apply_settings(h2.parse_settings(payload))
                self.out.append(h2.encode_frame(h2.SETTINGS, h2.FLAG_ACK, 0, b""))
                if not self.ready.done():
                    self.ready.set_result(None)
        elif frame_type == h2.RST_STREAM:
            code = h2.parse_rst_stream(payload)
            call = self.calls.get(stream_id)
            if call is None:
                self._check_closed_stream(stream_id)
                return
            if code == h2.REFUSED_STREAM:
                error = label(UNAVAILABLE, "stream refused by the server (REFUSED_STREAM)")
            elif code == h2.CANCEL:
                error = label(CANCELLED, "stream reset by the server (CANCEL)")
            else:
                error = label(INTERNAL, f"stream reset by the server ({_error_name(code)})")
            self._end(call, error)
        elif frame_type == h2.GOAWAY:
            self._on_goaway(*h2.parse_goaway(payload))
        elif frame_type == h2.PUSH_PROMISE:
            raise ProtocolViolation(h2.PROTOCOL_ERROR, "PUSH_PROMISE although we disabled push")
        elif frame_type == h2.CONTINUATION:
            raise ProtocolViolation(h2.PROTOCOL_ERROR, "CONTINUATION without an open header block")
        elif frame_type in (h2.DATA, h2.HEADERS) and stream_id == 0:
            raise ProtocolViolation(h2.PROTOCOL_ERROR, "DATA or HEADERS on stream 0")
        # PRIORITY and unknown frame types are ignored (RFC 9113 §4.1, §5.5)

    def _on_window_update(self, stream_id: int, increment: int) -> None:
        if stream_id == 0:
            if increment == 0:
                raise ProtocolViolation(h2.PROTOCOL_ERROR, "connection WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise ProtocolViolation(h2.FLOW_CONTROL_ERROR, "connection send window above 2^31-1")
        else:
            call = self.calls.get(stream_id)
            if call is None:
                self._check_closed_stream(stream_id)
                return
            call.send_window += increment
            if increment == 0 or call.send_window > MAX_WINDOW:
                code = h2.PROTOCOL_ERROR if increment == 0 else h2.FLOW_CONTROL_ERROR
                self.out.append(h2.encode_frame(h2.RST_STREAM, 0, stream_id, code.to_bytes(4, "big")))
                self._end(call, label(INTERNAL, f"bad stream WINDOW_UPDATE from the server ({_error_name(code)})"))
                return
        if self.blocked:
            self._send_blocked()

    def _apply_settings(self, settings: list[tuple[int, int]]) -> None:
        for key, value in settings:
            if key == SETTINGS_MAX_CONCURRENT_STREAMS:
                self.max_streams = value
            elif key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ProtocolViolation(h2.FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for call in self.calls.values():
                    call.send_window += delta
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not 16384 <= value <= 16777215:
                    raise ProtocolViolation(h2.PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
                self.peer_max_frame = value
            elif key == SETTINGS_ENABLE_PUSH and value > 1:
                raise ProtocolViolation(h2.PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH above 1")
            # HEADER_TABLE_SIZE needs nothing: our encoder never uses its dynamic table (size 0 from the start)
        if self.blocked:
            self._send_blocked()
        if self.queued:
            self._start_queued()

    def _on_goaway(self, last_stream_id: int, error_code: int, debug: bytes) -> None:
        reason = f"GOAWAY from the server ({_error_name(error_code)})"
        if debug:
            reason += f": {debug.decode('utf-8', 'replace')}"
        self.closed_reason = reason
        self._unusable(reason)
        for stream_id in [s for s in self.calls if s > last_stream_id]:  # never processed: safe to retry
            call = self.calls[stream_id]
            self._end(call, label(UNAVAILABLE, reason))
        if not self.calls and self.transport is not None:
            self.close()

    # -- failure --------------------------------------------------------------------------------

    def _unusable(self, reason: str) -> None:
        if self.usable:
            self.usable = False
            self.closed_reason = self.closed_reason or reason
            queued, self.queued = self.queued, deque()
            for call, _path, _data, _end in queued:
                self.loop.call_soon(call.done, label(UNAVAILABLE, reason), b"")
            if self.on_unusable is not None:
                self.on_unusable(self)

    def _connection_error(self, error_code: int, reason: str) -> None:
        """We found the server broke the protocol: GOAWAY with the error, close, fail every call."""
        self.closed_reason = f"HTTP/2 connection error ({_error_name(error_code)}): {reason}"
        # last stream id: the server opened none (push is off)
        payload = (0).to_bytes(4, "big") + error_code.to_bytes(4, "big") + reason.encode()[:256]
        self.out.append(h2.encode_frame(h2.GOAWAY, 0, 0, payload))
        self._flush()
        self._unusable(self.closed_reason)
        self._fail_all(label(UNAVAILABLE, self.closed_reason))
        if self.transport is not None:
            self.transport.close()

    def _fail_all(self, error: str) -> None:
        calls, self.calls = self.calls, {}
        self.blocked.clear()
        for call in calls.values():
            call.done(error, b"")

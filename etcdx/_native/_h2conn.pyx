# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of ``h2conn_py``: the sans-I/O HTTP/2 server connection driver, with the same API, events, errors
and bytes. The state lives in typed fields and the frame handlers are C calls; the constants, events and errors are
the twin's own objects, and frames and HPACK go through the compiled codec (``_h2codec``) and field checks
(``_h2fields``). Every rule and bound is the twin's: read it there (h2conn_py.py)."""

from etcdx._native import _h2codec as h2codec
from etcdx._native import _h2fields as h2fields
from etcdx._native.h2conn_py import (
    CONNECTION_WINDOW,
    HEADER_TABLE_SIZE,
    INITIAL_STREAM_WINDOW,
    LOCAL_MAX_FRAME_SIZE,
    MAX_HEADER_BLOCK_FRAMES,
    MAX_HEADER_LIST_SIZE,
    MAX_PING_STRIKES,
    PING_INTERVAL_WITHOUT_STREAMS,
    PREFACE,
    STREAM_CEILING,
    ConnectionEnded,
    Data,
    ProtocolError,
    RequestHeaders,
    StreamClosedError,
    StreamEnded,
    StreamReset,
    WindowOpened,
)

cdef object _CodecError = h2codec.H2CodecError
cdef object _encode_frame = h2codec.encode_frame
cdef object _encode_response = h2codec.encode_response

cdef int _DATA = h2codec.DATA
cdef int _HEADERS = h2codec.HEADERS
cdef int _PRIORITY = h2codec.PRIORITY
cdef int _RST_STREAM = h2codec.RST_STREAM
cdef int _SETTINGS = h2codec.SETTINGS
cdef int _PUSH_PROMISE = h2codec.PUSH_PROMISE
cdef int _PING = h2codec.PING
cdef int _GOAWAY = h2codec.GOAWAY
cdef int _WINDOW_UPDATE = h2codec.WINDOW_UPDATE
cdef int _CONTINUATION = h2codec.CONTINUATION
cdef int _FLAG_ACK = h2codec.FLAG_ACK
cdef int _FLAG_END_STREAM = h2codec.FLAG_END_STREAM
cdef int _FLAG_END_HEADERS = h2codec.FLAG_END_HEADERS
cdef int _FLAG_PADDED = h2codec.FLAG_PADDED
cdef int _NO_ERROR = h2codec.NO_ERROR
cdef int _PROTOCOL_ERROR = h2codec.PROTOCOL_ERROR
cdef int _FLOW_CONTROL_ERROR = h2codec.FLOW_CONTROL_ERROR
cdef int _STREAM_CLOSED = h2codec.STREAM_CLOSED
cdef int _FRAME_SIZE_ERROR = h2codec.FRAME_SIZE_ERROR
cdef int _REFUSED_STREAM = h2codec.REFUSED_STREAM
cdef int _ENHANCE_YOUR_CALM = 0xB

cdef long long _INITIAL_STREAM_WINDOW = INITIAL_STREAM_WINDOW
cdef long long _CONNECTION_WINDOW = CONNECTION_WINDOW
cdef long long _MAX_HEADER_LIST_SIZE = MAX_HEADER_LIST_SIZE
cdef Py_ssize_t _MAX_HEADER_BLOCK_FRAMES = MAX_HEADER_BLOCK_FRAMES
cdef int _STREAM_CEILING = STREAM_CEILING
cdef int _MAX_PING_STRIKES = MAX_PING_STRIKES
cdef double _PING_INTERVAL_WITHOUT_STREAMS = PING_INTERVAL_WITHOUT_STREAMS
cdef bytes _PREFACE = PREFACE
cdef Py_ssize_t _FIRST_FRAME_END = len(PREFACE) + h2codec.FRAME_HEADER_SIZE
cdef long long _DEFAULT_WINDOW = 65535
cdef long long _MAX_WINDOW = 2**31 - 1
cdef long long _MIN_FRAME_SIZE = 16384
cdef long long _MAX_FRAME_SIZE = 2**24 - 1
cdef Py_ssize_t _IGNORED_STREAMS = 1024
cdef Py_ssize_t _FEED_SLICE = 2048

# SETTINGS identifiers (RFC 9113 6.5.2; 8 is RFC 8441).
cdef int _S_HEADER_TABLE_SIZE = 1
cdef int _S_ENABLE_PUSH = 2
cdef int _S_MAX_CONCURRENT_STREAMS = 3
cdef int _S_INITIAL_WINDOW_SIZE = 4
cdef int _S_MAX_FRAME_SIZE = 5
cdef int _S_MAX_HEADER_LIST_SIZE = 6
cdef int _S_ENABLE_CONNECT_PROTOCOL = 8

cdef bytes _SETTINGS_ACK = _encode_frame(_SETTINGS, _FLAG_ACK, 0, b"")


cdef class _Stream:
    """An open stream: it is in ServerConnection._streams exactly while one of its sides is open."""

    cdef long long send_window, recv_window, unacked, header_bytes
    cdef bint remote_open, local_open

    def __cinit__(self, long long send_window, bint remote_open, long long header_bytes):
        self.header_bytes = header_bytes
        self.send_window = send_window
        self.recv_window = _INITIAL_STREAM_WINDOW
        self.unacked = 0
        self.remote_open = remote_open
        self.local_open = True


cdef bytes _window_update(long long stream_id, long long increment):
    return _encode_frame(_WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big"))


cdef bytes _rst_stream(long long stream_id, long long error_code):
    return _encode_frame(_RST_STREAM, 0, stream_id, error_code.to_bytes(4, "big"))


cdef bytes _goaway(long long last_stream_id, long long error_code, bytes debug):
    payload = last_stream_id.to_bytes(4, "big") + error_code.to_bytes(4, "big") + debug
    return _encode_frame(_GOAWAY, 0, 0, payload)


cdef class ServerConnection:
    cdef int _max_streams
    cdef object _clock
    cdef double _ping_min_time
    cdef int _ping_strikes
    cdef object _last_ping_at
    cdef bint _sent_since_ping
    cdef object _resets
    cdef object _shared_resets
    cdef long long _header_budget
    cdef long long _header_bytes
    cdef long long _queued
    cdef object _reader
    cdef object _decoder
    cdef object _encoder
    cdef object _fields
    cdef list _out
    cdef list _events
    cdef dict _streams
    cdef long long _highest_stream_id
    cdef dict _ignored
    cdef long long _send_window
    cdef long long _recv_window
    cdef long long _unacked
    cdef long long _peer_initial_window
    cdef long long _peer_max_frame_size
    cdef object _head  # bytes, or None once the preface and the first frame's header checked out
    cdef object _block  # (stream id, END_STREAM, fragments, total size) or None
    cdef bint _goaway_sent
    cdef object _error

    def __init__(self, long long max_concurrent_streams, double ping_min_time, clock, resets, shared_resets,
                 long long header_budget):
        if max_concurrent_streams > _STREAM_CEILING:
            max_concurrent_streams = _STREAM_CEILING
        self._max_streams = max_concurrent_streams
        self._clock = clock
        self._ping_min_time = ping_min_time
        self._ping_strikes = 0
        self._last_ping_at = None
        self._sent_since_ping = False
        self._resets = resets
        self._shared_resets = shared_resets
        self._header_budget = header_budget
        self._header_bytes = 0
        self._queued = 0
        self._reader = h2codec.FrameReader(LOCAL_MAX_FRAME_SIZE)
        self._decoder = h2codec.HpackDecoder(HEADER_TABLE_SIZE, MAX_HEADER_LIST_SIZE)
        self._decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE)
        self._encoder = h2codec.HpackEncoder()
        self._fields = h2fields.FieldChecker()
        self._out = []
        self._events = []
        self._streams = {}
        self._highest_stream_id = 0
        self._ignored = {}
        self._send_window = _DEFAULT_WINDOW
        self._recv_window = _CONNECTION_WINDOW
        self._unacked = 0
        self._peer_initial_window = _DEFAULT_WINDOW
        self._peer_max_frame_size = _MIN_FRAME_SIZE
        self._head = b""
        self._block = None
        self._goaway_sent = False
        self._error = None
        settings = [
            (_S_HEADER_TABLE_SIZE, HEADER_TABLE_SIZE),
            (_S_ENABLE_PUSH, 0),
            (_S_INITIAL_WINDOW_SIZE, INITIAL_STREAM_WINDOW),
            (_S_MAX_FRAME_SIZE, LOCAL_MAX_FRAME_SIZE),
            (_S_ENABLE_CONNECT_PROTOCOL, 0),
            (_S_MAX_CONCURRENT_STREAMS, max_concurrent_streams),
            (_S_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE),
        ]
        self._emit(_encode_frame(_SETTINGS, 0, 0, h2codec.encode_settings(settings)))
        self._emit(_window_update(0, _CONNECTION_WINDOW - _DEFAULT_WINDOW))

    # -- receiving -------------------------------------------------------------------------

    def receive(self, data):
        cdef Py_ssize_t start, size
        cdef int frame_type, flags
        cdef long long stream_id
        cdef tuple frame
        if self._error is not None:
            raise self._error
        events = self._events = []
        try:
            if self._head is not None:
                data = self._check_preface(data)
            size = len(data)
            for start in range(0, size, _FEED_SLICE):
                chunk = data if size <= _FEED_SLICE else data[start : start + _FEED_SLICE]
                for frame in self._reader.feed(chunk):
                    frame_type = frame[0]
                    flags = frame[1]
                    stream_id = frame[2]
                    payload = frame[3]
                    if self._block is not None and frame_type != _CONTINUATION:
                        raise _CodecError(_PROTOCOL_ERROR, "a header block interrupted by another frame")
                    self._on_frame(frame_type, flags, stream_id, payload)
        except _CodecError as exc:
            raise self._connection_error(exc.error_code, str(exc)) from exc
        return events

    cdef _on_frame(self, int frame_type, int flags, long long stream_id, bytes payload):
        if frame_type == _DATA:
            self._on_data(flags, stream_id, payload)
        elif frame_type == _HEADERS:
            self._on_headers(flags, stream_id, payload)
        elif frame_type == _WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif frame_type == _RST_STREAM:
            self._on_rst_stream(stream_id, payload)
        elif frame_type == _SETTINGS:
            self._on_settings(flags, stream_id, payload)
        elif frame_type == _PING:
            self._on_ping(flags, stream_id, payload)
        elif frame_type == _CONTINUATION:
            self._on_continuation(flags, stream_id, payload)
        elif frame_type == _PRIORITY:
            if stream_id == 0:
                raise _CodecError(_PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                raise _CodecError(_FRAME_SIZE_ERROR, f"PRIORITY payload of {len(payload)} bytes, not 5")
        elif frame_type == _GOAWAY:
            if stream_id != 0:
                raise _CodecError(_PROTOCOL_ERROR, f"GOAWAY on stream {stream_id}")
            h2codec.parse_goaway(payload)
            self._events.append(ConnectionEnded())
        elif frame_type == _PUSH_PROMISE:
            raise _CodecError(_PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        # frames of unknown types are ignored (RFC 9113 5.5)

    cdef object _check_preface(self, data):
        head = self._head + data
        if not head.startswith(_PREFACE[: len(head)]):
            raise _CodecError(_PROTOCOL_ERROR, "invalid HTTP/2 connection preface")
        if len(head) < _FIRST_FRAME_END:
            self._head = head
            return b""
        frame_type, flags = head[_FIRST_FRAME_END - 6], head[_FIRST_FRAME_END - 5]
        if frame_type != _SETTINGS or flags & _FLAG_ACK:
            raise _CodecError(_PROTOCOL_ERROR, "the connection preface is not followed by SETTINGS")
        self._head = None
        return head[len(_PREFACE) :]

    cdef object _connection_error(self, int error_code, str message):
        if not self._goaway_sent:
            self._goaway_sent = True
            self._emit(_goaway(self._highest_stream_id, error_code, message.encode()[:256]))
        self._error = ProtocolError(message, error_code)
        return self._error

    cdef _on_data(self, int flags, long long stream_id, bytes payload):
        cdef long long length = len(payload)
        cdef _Stream stream
        cdef bint end_stream
        if length > self._recv_window:
            raise _CodecError(_FLOW_CONTROL_ERROR, "DATA beyond the connection receive window")
        self._recv_window -= length
        found = self._streams.get(stream_id)
        if found is None or not (<_Stream>found).remote_open:
            self._credit(length)
            if found is None:
                self._late_frame(stream_id, flags & _FLAG_END_STREAM)
            else:
                self._stream_error(stream_id, _STREAM_CLOSED)
            return
        stream = <_Stream>found
        if length > stream.recv_window:
            raise _CodecError(_FLOW_CONTROL_ERROR, f"DATA beyond the receive window of stream {stream_id}")
        stream.recv_window -= length
        data = h2codec.strip_padding(flags, payload) if flags & _FLAG_PADDED else payload
        end_stream = flags & _FLAG_END_STREAM
        self._events.append(Data(stream_id, data, length, end_stream))
        if end_stream:
            self._end_remote(stream_id, stream)

    cdef _late_frame(self, long long stream_id, bint end_stream):
        if stream_id > self._highest_stream_id or not stream_id & 1:
            raise _CodecError(_PROTOCOL_ERROR, f"frame on idle stream {stream_id}")
        if stream_id not in self._ignored:
            raise _CodecError(_STREAM_CLOSED, f"frame on closed stream {stream_id}")
        if end_stream:
            del self._ignored[stream_id]

    cdef _on_headers(self, int flags, long long stream_id, bytes payload):
        if stream_id == 0:
            raise _CodecError(_PROTOCOL_ERROR, "HEADERS on stream 0")
        fragment = h2codec.headers_fragment(flags, payload)
        if flags & _FLAG_END_HEADERS:
            self._on_header_block(stream_id, flags & _FLAG_END_STREAM, fragment)
        else:
            self._block = (stream_id, bool(flags & _FLAG_END_STREAM), [fragment], len(fragment))

    cdef _on_continuation(self, int flags, long long stream_id, bytes payload):
        cdef list fragments
        cdef long long size
        if self._block is None or self._block[0] != stream_id:
            raise _CodecError(_PROTOCOL_ERROR, f"CONTINUATION on stream {stream_id} without a header block")
        _, end_stream, fragments, size = self._block
        size += len(payload)
        if size > _MAX_HEADER_LIST_SIZE:
            raise _CodecError(_ENHANCE_YOUR_CALM, "header block larger than SETTINGS_MAX_HEADER_LIST_SIZE")
        if len(fragments) >= _MAX_HEADER_BLOCK_FRAMES:
            raise _CodecError(_ENHANCE_YOUR_CALM, f"header block in more than {MAX_HEADER_BLOCK_FRAMES} frames")
        fragments.append(payload)
        self._block = (stream_id, end_stream, fragments, size)
        if flags & _FLAG_END_HEADERS:
            self._block = None
            self._on_header_block(stream_id, end_stream, b"".join(fragments))

    cdef _on_header_block(self, long long stream_id, bint end_stream, bytes block):
        headers = self._decoder.decode(block)  # always decoded: the HPACK table must follow every block
        found = self._streams.get(stream_id)
        if found is not None:
            self._on_trailers(stream_id, <_Stream>found, end_stream, headers)
        elif not stream_id & 1:
            raise _CodecError(_PROTOCOL_ERROR, f"HEADERS on stream {stream_id}, an id clients do not use")
        elif stream_id <= self._highest_stream_id:
            self._late_frame(stream_id, end_stream)
        else:
            self._highest_stream_id = stream_id
            self._on_request(stream_id, end_stream, headers, self._decoder.list_size)

    cdef _on_request(self, long long stream_id, bint end_stream, list headers, long long header_bytes):
        if self._goaway_sent:
            if not end_stream:
                self._ignore_later_frames(stream_id)
            return
        if len(self._streams) >= self._max_streams or self._header_bytes + header_bytes > self._header_budget:
            self._refuse(stream_id, end_stream, _REFUSED_STREAM)
        elif self._fields.request_problem(headers) is not None:
            self._refuse(stream_id, end_stream, _PROTOCOL_ERROR)
        else:
            self._streams[stream_id] = _Stream(self._peer_initial_window, not end_stream, header_bytes)
            self._header_bytes += header_bytes
            self._events.append(RequestHeaders(stream_id, headers, end_stream))

    cdef _on_trailers(self, long long stream_id, _Stream stream, bint end_stream, list headers):
        if not stream.remote_open:
            self._stream_error(stream_id, _STREAM_CLOSED)
        elif not end_stream or self._fields.trailers_problem(headers) is not None:
            self._stream_error(stream_id, _PROTOCOL_ERROR)
        else:
            self._events.append(StreamEnded(stream_id))
            self._end_remote(stream_id, stream)

    cdef _on_rst_stream(self, long long stream_id, bytes payload):
        h2codec.parse_rst_stream(payload)
        if stream_id == 0:
            raise _CodecError(_PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if self._forget(stream_id) is not None:
            self._spend_reset_token()
            self._events.append(StreamReset(stream_id))
        elif stream_id > self._highest_stream_id or not stream_id & 1:
            raise _CodecError(_PROTOCOL_ERROR, f"RST_STREAM on idle stream {stream_id}")
        else:
            self._ignored.pop(stream_id, None)

    cdef _on_settings(self, int flags, long long stream_id, bytes payload):
        cdef bint opened = False
        if stream_id != 0:
            raise _CodecError(_PROTOCOL_ERROR, f"SETTINGS on stream {stream_id}")
        if flags & _FLAG_ACK:
            if payload:
                raise _CodecError(_FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        for identifier, value in h2codec.parse_settings(payload):
            if identifier == _S_INITIAL_WINDOW_SIZE:
                opened = self._set_peer_initial_window(value) or opened
            elif identifier == _S_MAX_FRAME_SIZE:
                if not _MIN_FRAME_SIZE <= value <= _MAX_FRAME_SIZE:
                    raise _CodecError(_PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value} out of range")
                self._peer_max_frame_size = value
            elif (identifier == _S_ENABLE_PUSH or identifier == _S_ENABLE_CONNECT_PROTOCOL) and value > 1:
                raise _CodecError(_PROTOCOL_ERROR, f"SETTINGS {identifier} must be 0 or 1, not {value}")
        self._emit(_SETTINGS_ACK)
        if opened:
            self._events.append(WindowOpened(0))

    cdef bint _set_peer_initial_window(self, value) except -1:
        cdef long long delta
        cdef _Stream stream
        if value > _MAX_WINDOW:
            raise _CodecError(_FLOW_CONTROL_ERROR, f"SETTINGS_INITIAL_WINDOW_SIZE {value} above 2**31-1")
        delta = value - self._peer_initial_window
        self._peer_initial_window = value
        for found in self._streams.values():
            stream = <_Stream>found
            stream.send_window += delta
            if stream.send_window > _MAX_WINDOW:
                raise _CodecError(_FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window")
        return delta > 0

    cdef _on_ping(self, int flags, long long stream_id, bytes payload):
        if stream_id != 0:
            raise _CodecError(_PROTOCOL_ERROR, f"PING on stream {stream_id}")
        if len(payload) != 8:
            raise _CodecError(_FRAME_SIZE_ERROR, f"PING payload of {len(payload)} bytes, not 8")
        if not flags & _FLAG_ACK:
            self._emit(_encode_frame(_PING, _FLAG_ACK, 0, payload))
            self._police_ping()

    cdef _police_ping(self):
        now = self._clock()
        last, self._last_ping_at = self._last_ping_at, now
        if self._sent_since_ping:
            self._sent_since_ping = False
            self._ping_strikes = 0
            return
        min_time = self._ping_min_time if self._streams else _PING_INTERVAL_WITHOUT_STREAMS
        if last is not None and now - last < min_time:
            self._ping_strikes += 1
        if self._ping_strikes > _MAX_PING_STRIKES:
            raise _CodecError(_ENHANCE_YOUR_CALM, "too_many_pings")

    cdef _on_window_update(self, long long stream_id, bytes payload):
        cdef long long increment = h2codec.parse_window_update(payload)
        cdef _Stream stream
        if stream_id == 0:
            if increment == 0:
                raise _CodecError(_PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection")
            self._send_window += increment
            if self._send_window > _MAX_WINDOW:
                raise _CodecError(_FLOW_CONTROL_ERROR, "WINDOW_UPDATE overflows the connection window")
            self._events.append(WindowOpened(0))
            return
        found = self._streams.get(stream_id)
        if found is None:
            if stream_id > self._highest_stream_id or not stream_id & 1:
                raise _CodecError(_PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {stream_id}")
            return
        stream = <_Stream>found
        if increment == 0:
            self._stream_error(stream_id, _PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > _MAX_WINDOW:
            self._stream_error(stream_id, _FLOW_CONTROL_ERROR)
        elif stream.local_open:
            self._events.append(WindowOpened(stream_id))

    cdef _spend_reset_token(self):
        if not self._resets.take() or (self._shared_resets is not None and not self._shared_resets.take()):
            raise _CodecError(_ENHANCE_YOUR_CALM, "too many stream resets")

    cdef object _forget(self, long long stream_id):
        found = self._streams.pop(stream_id, None)
        if found is not None:
            self._header_bytes -= (<_Stream>found).header_bytes
        return found

    cdef _end_remote(self, long long stream_id, _Stream stream):
        stream.remote_open = False
        if not stream.local_open:
            self._forget(stream_id)

    cdef _stream_error(self, long long stream_id, int error_code):
        self.reset(stream_id, error_code)
        self._events.append(StreamReset(stream_id))

    cdef _refuse(self, long long stream_id, bint end_stream, int error_code):
        self._emit(_rst_stream(stream_id, error_code))
        if not end_stream:
            self._ignore_later_frames(stream_id)

    cdef _ignore_later_frames(self, long long stream_id):
        self._ignored[stream_id] = None
        if len(self._ignored) > _IGNORED_STREAMS:
            del self._ignored[next(iter(self._ignored))]

    # -- receive flow control ----------------------------------------------------------------

    def acknowledge(self, long long stream_id, long long length):
        cdef _Stream stream
        cdef long long increment
        if not length:
            return
        self._credit(length)
        found = self._streams.get(stream_id)
        if found is not None and (<_Stream>found).remote_open:
            stream = <_Stream>found
            stream.unacked += length
            if stream.unacked >= stream.recv_window:
                increment = min(stream.unacked, _MAX_WINDOW - stream.recv_window)
                stream.recv_window += increment
                stream.unacked = 0
                self._emit(_window_update(stream_id, increment))

    cdef _credit(self, long long length):
        cdef long long increment
        self._unacked += length
        if self._unacked >= self._recv_window:
            increment = min(self._unacked, _MAX_WINDOW - self._recv_window)
            self._recv_window += increment
            self._unacked = 0
            self._emit(_window_update(0, increment))

    # -- sending -----------------------------------------------------------------------------

    cdef _Stream _sendable(self, long long stream_id):
        found = self._streams.get(stream_id)
        if found is None or not (<_Stream>found).local_open:
            raise StreamClosedError(f"stream {stream_id} is not open for sending")
        return <_Stream>found

    def send_headers(self, long long stream_id, headers, bint end_stream=False):
        cdef _Stream stream = self._sendable(stream_id)
        self._sent_since_ping = True
        self._emit_block(stream_id, self._encoder.encode(headers), end_stream)
        if end_stream:
            self._end_local(stream_id, stream)

    cdef _emit_block(self, long long stream_id, bytes block, bint end_stream):
        cdef int flags = _FLAG_END_STREAM if end_stream else 0
        cdef Py_ssize_t limit = self._peer_max_frame_size
        cdef Py_ssize_t start
        if len(block) <= limit:
            self._emit(_encode_frame(_HEADERS, flags | _FLAG_END_HEADERS, stream_id, block))
            return
        self._emit(_encode_frame(_HEADERS, flags, stream_id, block[:limit]))
        for start in range(limit, len(block), limit):
            flags = _FLAG_END_HEADERS if start + limit >= len(block) else 0
            self._emit(_encode_frame(_CONTINUATION, flags, stream_id, block[start : start + limit]))

    def send_response(self, long long stream_id, headers, head, body, trailers):
        cdef _Stream stream = self._sendable(stream_id)
        cdef long long size = len(head) + len(body)
        cdef Py_ssize_t limit
        if size > stream.send_window or size > self._send_window or size > self._peer_max_frame_size:
            return False
        stream.send_window -= size
        self._send_window -= size
        self._sent_since_ping = True
        encode = self._encoder.encode
        cdef bytes header_block = encode(headers)
        cdef bytes trailer_block = encode(trailers)
        limit = self._peer_max_frame_size
        if len(header_block) <= limit and len(trailer_block) <= limit:
            self._emit(_encode_response(stream_id, header_block, head, body, trailer_block))
        else:
            self._emit_block(stream_id, header_block, False)
            self._emit(_encode_frame(_DATA, 0, stream_id, head + body))
            self._emit_block(stream_id, trailer_block, True)
        self._end_local(stream_id, stream)
        return True

    def send_data(self, long long stream_id, data, bint end_stream=False):
        cdef _Stream stream = self._sendable(stream_id)
        cdef long long size = len(data)
        cdef int flags
        cdef Py_ssize_t limit, start
        cdef bint last
        if size > stream.send_window or size > self._send_window:
            raise ValueError(f"{size} bytes exceed the send window of stream {stream_id}")
        stream.send_window -= size
        self._send_window -= size
        self._sent_since_ping = True
        flags = _FLAG_END_STREAM if end_stream else 0
        limit = self._peer_max_frame_size
        if size <= limit:
            self._emit(_encode_frame(_DATA, flags, stream_id, data))
        else:
            view = memoryview(data)
            for start in range(0, size, limit):
                last = start + limit >= size
                chunk = bytes(view[start : start + limit])
                self._emit(_encode_frame(_DATA, flags if last else 0, stream_id, chunk))
        if end_stream:
            self._end_local(stream_id, stream)

    cdef _end_local(self, long long stream_id, _Stream stream):
        stream.local_open = False
        if not stream.remote_open:
            self._forget(stream_id)

    def send_window(self, long long stream_id):
        cdef _Stream stream = self._sendable(stream_id)
        return min(stream.send_window, self._send_window)

    @property
    def max_frame_size(self):
        return self._peer_max_frame_size

    def reset(self, long long stream_id, long long error_code=0):
        found = self._forget(stream_id)
        if found is None:
            return
        self._emit(_rst_stream(stream_id, error_code))
        if (<_Stream>found).remote_open:
            self._ignore_later_frames(stream_id)

    def ping(self, opaque):
        self._emit(_encode_frame(_PING, 0, 0, opaque))

    def close(self):
        if not self._goaway_sent:
            self._goaway_sent = True
            self._emit(_goaway(self._highest_stream_id, _NO_ERROR, b""))

    cdef inline _emit(self, bytes frame):
        self._out.append(frame)
        self._queued += len(frame)

    @property
    def queued_bytes(self):
        return self._queued

    def bytes_to_send(self):
        cdef list out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._queued = 0
        return data

# cython: language_level=3, boundscheck=False, wraparound=False
"""Sans-I/O HTTP/2 framing (RFC 9113) and HPACK (RFC 7541), compiled: the same API and behaviour as
h2codec_py.py (its readable twin and specification), which also provides the shared H2CodecError class
and the static table.

What differs is only how: frames are cut straight out of the caller's bytes (only a frame split across
two ``feed`` calls is copied into the buffer); HPACK is parsed through a C pointer; the dynamic table is
a ring of (name, value) tuples whose size is kept in a power-of-two Python list; Huffman strings are
decoded a whole octet at a time by a 256-state x 256-octet table built in C at import; the encoder
writes into a scratch buffer it keeps between calls.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport int16_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

from etcdx._native.h2codec_py import DEFAULT_MAX_HEADER_LIST_SIZE, ENTRY_OVERHEAD, STATIC_TABLE, H2CodecError

FRAME_HEADER_SIZE = 9

DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9

cdef enum:
    _HEADER = 9
    _DATA = 0x0
    _HEADERS = 0x1
    _END_STREAM = 0x1
    _END_HEADERS = 0x4
    _PADDED = 0x8
    _PRIORITY = 0x20
    _PROTOCOL_ERROR = 0x1
    _FRAME_SIZE_ERROR = 0x6
    _COMPRESSION_ERROR = 0x9
    _OVERHEAD = 32
    _STATIC_LENGTH = 61
    _MAX_FRAME_LENGTH = 0xFFFFFF
    _MAX_STREAM_ID = 0x7FFFFFFF
    _MAX_INT_CONTINUATIONS = 5  # RFC 7541 §5.1 integer bounds: as the twin, 5 octets and below 2**32

assert ENTRY_OVERHEAD == _OVERHEAD and len(STATIC_TABLE) == _STATIC_LENGTH

cdef tuple _STATIC = STATIC_TABLE


cdef inline bytes _as_bytes(object data):
    return data if PyBytes_Check(data) else bytes(data)


cdef inline uint32_t _u32(const unsigned char* p) noexcept:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


# -- frames ----------------------------------------------------------------------------------------


cdef inline unsigned char* _put_frame_header(
    unsigned char* p, Py_ssize_t length, unsigned char frame_type, unsigned char flags, uint32_t sid
) noexcept:
    p[0] = length >> 16
    p[1] = length >> 8
    p[2] = length
    p[3] = frame_type
    p[4] = flags
    p[5] = sid >> 24
    p[6] = sid >> 16
    p[7] = sid >> 8
    p[8] = sid
    return p + _HEADER


cdef inline unsigned char* _put_bytes(unsigned char* p, bytes data) noexcept:
    memcpy(p, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    return p + PyBytes_GET_SIZE(data)


cdef int _check_length(Py_ssize_t length) except -1:
    if length > _MAX_FRAME_LENGTH:
        raise ValueError(f"frame payload of {length} bytes exceeds 2**24 - 1")
    return 0


def encode_frame(frame_type, flags, stream_id, payload):
    """The 9-byte frame header followed by ``payload`` (the caller keeps it within the peer's limit)."""
    cdef bytes body = _as_bytes(payload)
    cdef Py_ssize_t length = PyBytes_GET_SIZE(body)
    _check_length(length)
    if not 0 <= stream_id <= _MAX_STREAM_ID:
        raise ValueError(f"stream id {stream_id} out of range")
    if not (0 <= frame_type <= 0xFF and 0 <= flags <= 0xFF):
        raise ValueError(f"frame type {frame_type} or flags {flags} out of range")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, _HEADER + length)
    _put_bytes(_put_frame_header(<unsigned char*>PyBytes_AS_STRING(out), length, frame_type, flags, stream_id), body)
    return out


def encode_response(stream_id, header_block, head, body, trailer_block):
    """A whole response in one bytes object: HEADERS (END_HEADERS) holding ``header_block``, one DATA frame
    holding ``head`` + ``body``, and HEADERS (END_HEADERS | END_STREAM) holding ``trailer_block``.

    Each payload must fit one frame of the peer's (the caller checks its SETTINGS_MAX_FRAME_SIZE)."""
    cdef bytes headers = _as_bytes(header_block), first = _as_bytes(head), rest = _as_bytes(body)
    cdef bytes trailers = _as_bytes(trailer_block)
    cdef Py_ssize_t data_length = PyBytes_GET_SIZE(first) + PyBytes_GET_SIZE(rest)
    _check_length(PyBytes_GET_SIZE(headers))
    _check_length(data_length)
    _check_length(PyBytes_GET_SIZE(trailers))
    if not 0 <= stream_id <= _MAX_STREAM_ID:
        raise ValueError(f"stream id {stream_id} out of range")
    cdef uint32_t sid = stream_id
    cdef bytes out = PyBytes_FromStringAndSize(
        NULL, 3 * _HEADER + PyBytes_GET_SIZE(headers) + data_length + PyBytes_GET_SIZE(trailers)
    )
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    p = _put_bytes(_put_frame_header(p, PyBytes_GET_SIZE(headers), _HEADERS, _END_HEADERS, sid), headers)
    p = _put_bytes(_put_bytes(_put_frame_header(p, data_length, _DATA, 0, sid), first), rest)
    p = _put_frame_header(p, PyBytes_GET_SIZE(trailers), _HEADERS, _END_HEADERS | _END_STREAM, sid)
    _put_bytes(p, trailers)
    return out


cdef inline tuple _frame(const unsigned char* p, Py_ssize_t length):
    """(type, flags, stream id without the R bit, payload) of the frame whose header is at p."""
    return (p[3], p[4], _u32(p + 5) & _MAX_STREAM_ID, PyBytes_FromStringAndSize(<const char*>p + _HEADER, length))


cdef inline Py_ssize_t _length(const unsigned char* p) noexcept:
    return (<Py_ssize_t>p[0] << 16) | (<Py_ssize_t>p[1] << 8) | p[2]


cdef class FrameReader:
    """Splits a byte stream into frames; keeps a partial frame until the rest arrives.

    A frame whose declared length exceeds ``max_frame_size`` raises H2CodecError(FRAME_SIZE_ERROR) as
    soon as its header is in; the frames completed before it in the same ``feed`` are dropped with it
    (the connection is being closed) and the bad header stays buffered, so a later ``feed`` raises again.
    """

    cdef public Py_ssize_t max_frame_size
    cdef bytearray _buf  # a partial frame only: empty whenever feed returns without error

    def __init__(self, Py_ssize_t max_frame_size=16384):
        self.max_frame_size = max_frame_size
        self._buf = bytearray()

    cdef _too_long(self, Py_ssize_t length):
        raise H2CodecError(
            _FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds the maximum frame size {self.max_frame_size}"
        )

    cdef Py_ssize_t _complete_buffered(self, list frames, bytes data) except -1:
        """Moves bytes of ``data`` into the buffered partial frame; returns how many it took.

        Appends the frame to ``frames`` when it completes (and empties the buffer); otherwise all of
        ``data`` was taken.
        """
        cdef bytearray buf = self._buf
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data), pos = 0, have = PyByteArray_GET_SIZE(buf), length, take
        if have < _HEADER:
            pos = min(_HEADER - have, n)
            buf += data[:pos]
            if PyByteArray_GET_SIZE(buf) < _HEADER:
                return pos
        length = _length(<const unsigned char*>PyByteArray_AS_STRING(buf))
        if length > self.max_frame_size:
            buf += data[pos:]
            self._too_long(length)
        take = min(_HEADER + length - PyByteArray_GET_SIZE(buf), n - pos)
        buf += data[pos : pos + take]
        pos += take
        if PyByteArray_GET_SIZE(buf) == _HEADER + length:
            frames.append(_frame(<const unsigned char*>PyByteArray_AS_STRING(buf), length))
            del buf[:]
        return pos

    def feed(self, data):
        """Every frame completed by ``data`` as (type, flags, stream id without the R bit, payload)."""
        cdef bytes chunk = _as_bytes(data)
        cdef list frames = []
        cdef Py_ssize_t n = PyBytes_GET_SIZE(chunk), pos = 0, length
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(chunk)
        if PyByteArray_GET_SIZE(self._buf):
            pos = self._complete_buffered(frames, chunk)
            if PyByteArray_GET_SIZE(self._buf):
                return frames
        while n - pos >= _HEADER:
            length = _length(p + pos)
            if length > self.max_frame_size:
                self._buf += chunk[pos:]
                self._too_long(length)
            if n - pos - _HEADER < length:
                break
            frames.append(_frame(p + pos, length))
            pos += _HEADER + length
        if pos < n:
            self._buf += chunk[pos:]
        return frames

    def pending(self):
        """How many bytes are buffered that do not yet make a whole frame."""
        return PyByteArray_GET_SIZE(self._buf)


def strip_padding(int flags, payload):
    """A DATA or HEADERS payload without its Pad Length byte and padding when FLAG_PADDED is set."""
    if not flags & _PADDED:
        return payload
    cdef bytes body = _as_bytes(payload)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    if n == 0:
        raise H2CodecError(_PROTOCOL_ERROR, "padded frame without a Pad Length byte")
    cdef Py_ssize_t pad = (<const unsigned char*>PyBytes_AS_STRING(body))[0]
    if pad >= n:
        raise H2CodecError(_PROTOCOL_ERROR, f"padding of {pad} bytes in a payload of {n} bytes")
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(body) + 1, n - 1 - pad)


def headers_fragment(int flags, payload):
    """A HEADERS payload's header block fragment: padding and the 5 priority bytes removed.

    A payload too short for the priority fields is FRAME_SIZE_ERROR (RFC 9113 §4.2).
    """
    fragment = strip_padding(flags, payload)
    if flags & _PRIORITY:
        if len(fragment) < 5:
            raise H2CodecError(_FRAME_SIZE_ERROR, "HEADERS frame too short for its priority fields")
        fragment = fragment[5:]
    return fragment


def parse_settings(payload):
    """A SETTINGS payload's (identifier, value) pairs in order; values are not range-checked here."""
    cdef bytes body = _as_bytes(payload)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body), pos
    if n % 6:
        raise H2CodecError(_FRAME_SIZE_ERROR, f"SETTINGS payload of {n} bytes is not a multiple of 6")
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(body)
    cdef list pairs = []
    for pos in range(0, n, 6):
        pairs.append(((p[pos] << 8) | p[pos + 1], _u32(p + pos + 2)))
    return pairs


def encode_settings(settings):
    """A SETTINGS payload holding ``settings`` in order."""
    cdef list pairs = list(settings)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 6 * len(pairs))
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    cdef int identifier
    cdef uint32_t value
    for identifier, value in pairs:
        p[0] = identifier >> 8
        p[1] = identifier
        p[2] = value >> 24
        p[3] = value >> 16
        p[4] = value >> 8
        p[5] = value
        p += 6
    return out


cdef uint32_t _u32_payload(object payload, str what) except? 0xFFFFFFFF:
    cdef bytes body = _as_bytes(payload)
    if PyBytes_GET_SIZE(body) != 4:
        raise H2CodecError(_FRAME_SIZE_ERROR, f"{what} payload of {PyBytes_GET_SIZE(body)} bytes, not 4")
    return _u32(<const unsigned char*>PyBytes_AS_STRING(body))


def parse_window_update(payload):
    """The window size increment, R bit cleared (0 is returned: the caller decides which error it is)."""
    return _u32_payload(payload, "WINDOW_UPDATE") & _MAX_STREAM_ID


def parse_rst_stream(payload):
    """The error code of a RST_STREAM frame."""
    return _u32_payload(payload, "RST_STREAM")


def parse_goaway(payload):
    """(last stream id with the R bit cleared, error code, additional debug data)."""
    cdef bytes body = _as_bytes(payload)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    if n < 8:
        raise H2CodecError(_FRAME_SIZE_ERROR, f"GOAWAY payload of {n} bytes, less than 8")
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(body)
    return _u32(p) & _MAX_STREAM_ID, _u32(p + 4), PyBytes_FromStringAndSize(<const char*>p + 8, n - 8)


# -- HPACK: Huffman decoding -----------------------------------------------------------------------
#
# The code's tree has 257 leaves (256 octets and EOS), so 256 inner nodes, numbered 0..255 with the
# root 0: a decoder state is one octet. _STEP[state][octet] is where 8 more bits lead: the next state,
# the octets completed on the way (0, 1 or 2: no code is shorter than 5 bits) and whether EOS was hit.
# _ACCEPT[state]: the bits since the last octet are valid padding (at most 7, all ones; RFC 7541 §5.2).

cdef struct _Step:
    uint8_t next
    uint8_t count  # octets completed, 0..2
    uint8_t eos    # the EOS code was completed: the string is malformed
    uint8_t symbols[2]

cdef enum:
    _EOS = 256

cdef _Step _STEP[256][256]
cdef bint _ACCEPT[256]


cdef void _build_huffman(list codes, list lengths):
    cdef int16_t children[256][2]  # an inner child is >= 0 (never the root), a leaf -1 - symbol
    cdef int nodes = 1, symbol, node, bit, shift, state, octet, child
    cdef uint32_t code
    cdef _Step* step
    children[0][0] = children[0][1] = 0
    for symbol in range(257):
        code, node = codes[symbol], 0
        for shift in range(<int>lengths[symbol] - 1, 0, -1):
            bit = (code >> shift) & 1
            if children[node][bit] == 0:
                children[nodes][0] = children[nodes][1] = 0
                children[node][bit] = nodes
                nodes += 1
            node = children[node][bit]
        children[node][code & 1] = -1 - symbol
    for state in range(256):
        for octet in range(256):
            step = &_STEP[state][octet]
            step.count = step.eos = step.symbols[0] = step.symbols[1] = 0
            node = state
            for shift in range(7, -1, -1):
                child = children[node][(octet >> shift) & 1]
                if child >= 0:
                    node = child
                elif -1 - child == _EOS:
                    step.eos = 1
                    break
                else:
                    step.symbols[step.count] = -1 - child
                    step.count += 1
                    node = 0
            step.next = node
    node = 0
    for state in range(256):
        _ACCEPT[state] = False
    for shift in range(8):  # the all-ones path: padding of 0..7 bits
        _ACCEPT[node] = True
        node = children[node][1]


_build_huffman(list(REQUEST_CODES), list(REQUEST_CODES_LENGTH))


cdef Py_ssize_t _huffman(const unsigned char* src, Py_ssize_t n, unsigned char* out) except -1:
    """Decodes n Huffman-coded octets into out (room for 8 * n // 5 + 2); returns the octets written."""
    cdef Py_ssize_t i, written = 0
    cdef uint8_t state = 0
    cdef const _Step* step
    for i in range(n):
        step = &_STEP[state][src[i]]
        if step.eos:
            raise H2CodecError(_COMPRESSION_ERROR, "Huffman string contains EOS")
        out[written] = step.symbols[0]
        out[written + 1] = step.symbols[1]
        written += step.count
        state = step.next
    if not _ACCEPT[state]:
        raise H2CodecError(_COMPRESSION_ERROR, "Huffman string padding is not up to 7 one bits")
    return written


cdef enum:
    _STACK_OUT = 1024


cdef bytes _huffman_bytes(const unsigned char* src, Py_ssize_t n):
    cdef unsigned char stack[_STACK_OUT]
    cdef Py_ssize_t room = 8 * n // 5 + 2, written
    cdef unsigned char* out = stack
    if room > _STACK_OUT:
        out = <unsigned char*>PyMem_Malloc(room)
        if out == NULL:
            raise MemoryError()
    try:
        written = _huffman(src, n, out)
        return PyBytes_FromStringAndSize(<const char*>out, written)
    finally:
        if out != stack:
            PyMem_Free(out)


def huffman_decode(data):
    """The octets Huffman-coded in ``data``; bad padding or an EOS symbol raise COMPRESSION_ERROR."""
    cdef bytes body = _as_bytes(data)
    return _huffman_bytes(<const unsigned char*>PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))


# -- HPACK: decoding -------------------------------------------------------------------------------


cdef Py_ssize_t _decode_int(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos, int prefix_bits) except -1:
    """The integer whose prefix is in p[pos[0]]'s low ``prefix_bits``; advances pos[0] past it."""
    cdef uint64_t mask = (1 << prefix_bits) - 1, value = p[pos[0]] & mask
    cdef int shift = 0, i
    cdef unsigned char octet
    pos[0] += 1
    if value < mask:
        return value
    for i in range(_MAX_INT_CONTINUATIONS):
        if pos[0] >= n:
            raise H2CodecError(_COMPRESSION_ERROR, "truncated integer")
        octet = p[pos[0]]
        pos[0] += 1
        value += <uint64_t>(octet & 0x7F) << shift
        if not octet & 0x80:
            if value > 0xFFFFFFFF:
                raise H2CodecError(_COMPRESSION_ERROR, "integer too large")
            return value
        shift += 7
    raise H2CodecError(_COMPRESSION_ERROR, "integer too long")


cdef bytes _decode_str(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos):
    """The string literal at p[pos[0]]; advances pos[0] past it."""
    if pos[0] >= n:
        raise H2CodecError(_COMPRESSION_ERROR, "truncated header field: string expected")
    cdef bint huffman = p[pos[0]] & 0x80
    cdef Py_ssize_t length = _decode_int(p, n, pos, 7), start = pos[0]
    if length > n - start:
        raise H2CodecError(_COMPRESSION_ERROR, f"string of {length} bytes runs past the end of the block")
    pos[0] = start + length
    if huffman:
        return _huffman_bytes(p + start, length)
    return PyBytes_FromStringAndSize(<const char*>p + start, length)


cdef inline Py_ssize_t _entry_size(tuple entry) noexcept:
    return _OVERHEAD + PyBytes_GET_SIZE(<object>PyTuple_GET_ITEM(entry, 0)) + PyBytes_GET_SIZE(
        <object>PyTuple_GET_ITEM(entry, 1)
    )


cdef class HpackDecoder:
    """Decodes header blocks of one connection, keeping the dynamic table between blocks.

    The dynamic table is a ring in ``_ring`` (a list whose length is a power of two): entry i, newest
    first (HPACK index 62 + i), is at (_head + i) & (len - 1); _count entries, _size bytes per RFC 7541
    §4.1, never above _max_size. Size updates come only at the start of a block and never above
    _allowed (what we advertised as SETTINGS_HEADER_TABLE_SIZE); lowering _allowed does not itself shrink
    the table: the peer does that with a size update (RFC 7541 §4.2).
    """

    cdef list _ring
    cdef Py_ssize_t _head, _count, _size, _max_size, _allowed, _max_list_size
    cdef readonly Py_ssize_t list_size  # the last decoded list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it

    def __init__(self, Py_ssize_t max_table_size=4096, Py_ssize_t max_header_list_size=DEFAULT_MAX_HEADER_LIST_SIZE):
        self._max_list_size = max_header_list_size
        self._ring = [None] * 16
        self._head = self._count = self._size = 0
        self._max_size = self._allowed = max_table_size

    def set_max_allowed_table_size(self, Py_ssize_t size):
        """What we advertised as SETTINGS_HEADER_TABLE_SIZE: the bound for the peer's size updates."""
        self._allowed = size

    cdef void _evict_to(self, Py_ssize_t limit):
        cdef Py_ssize_t mask = len(self._ring) - 1, oldest
        while self._size > limit:
            oldest = (self._head + self._count - 1) & mask
            self._size -= _entry_size(<tuple>self._ring[oldest])
            self._ring[oldest] = None
            self._count -= 1

    cdef void _add(self, tuple entry):
        cdef Py_ssize_t size = _entry_size(entry), i, capacity = len(self._ring)
        if size > self._max_size:  # §4.4: an entry larger than the table empties it and is not added
            self._evict_to(0)
            return
        self._evict_to(self._max_size - size)
        if self._count == capacity:
            self._ring = [self._ring[(self._head + i) & (capacity - 1)] for i in range(capacity)] + [None] * capacity
            self._head = 0
            capacity *= 2
        self._head = (self._head - 1) & (capacity - 1)
        self._ring[self._head] = entry
        self._count += 1
        self._size += size

    cdef tuple _entry(self, Py_ssize_t index):
        if index == 0:
            raise H2CodecError(_COMPRESSION_ERROR, "header index 0")
        if index <= _STATIC_LENGTH:
            return <tuple>PyTuple_GET_ITEM(_STATIC, index - 1)
        cdef Py_ssize_t dynamic = index - _STATIC_LENGTH - 1
        if dynamic >= self._count:
            raise H2CodecError(_COMPRESSION_ERROR, f"header index {index} past the end of the table")
        return <tuple>self._ring[(self._head + dynamic) & (len(self._ring) - 1)]

    def decode(self, block):
        """The header list of a complete header block (CONTINUATION fragments already joined)."""
        cdef bytes data = _as_bytes(block)
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data), pos = 0, index, size
        cdef Py_ssize_t listed = 0  # the list's size so far, as SETTINGS_MAX_HEADER_LIST_SIZE counts it
        cdef list headers = []
        cdef unsigned char octet
        cdef bint indexing
        cdef bytes name, value
        cdef tuple entry
        while pos < n:
            octet = p[pos]
            if octet & 0x80:  # §6.1 indexed header field
                entry = self._entry(_decode_int(p, n, &pos, 7))
            elif octet & 0xE0 == 0x20:  # §6.3 dynamic table size update
                if headers:
                    raise H2CodecError(_COMPRESSION_ERROR, "table size update after a header field")
                size = _decode_int(p, n, &pos, 5)
                if size > self._allowed:
                    raise H2CodecError(
                        _COMPRESSION_ERROR, f"table size update to {size} above the allowed {self._allowed}"
                    )
                self._max_size = size
                self._evict_to(size)
                continue
            else:  # §6.2 literal: with incremental indexing (01), without (0000) or never indexed (0001)
                indexing = octet & 0x40
                index = _decode_int(p, n, &pos, 6 if indexing else 4)
                if index:
                    name = <bytes>PyTuple_GET_ITEM(self._entry(index), 0)
                else:
                    name = _decode_str(p, n, &pos)
                value = _decode_str(p, n, &pos)
                entry = (name, value)
                if indexing:
                    self._add(entry)
            listed += _entry_size(entry)
            if listed > self._max_list_size:
                raise H2CodecError(_COMPRESSION_ERROR, f"header list larger than {self._max_list_size} bytes")
            headers.append(entry)
        self.list_size = listed
        return headers


# -- HPACK: encoding -------------------------------------------------------------------------------

# name -> (lowest static index of the name, {value: lowest static index of the exact pair})
cdef dict _STATIC_NAMES = {}
for _index, (_name, _value) in enumerate(STATIC_TABLE, 1):
    _STATIC_NAMES.setdefault(_name, (_index, {}))[1].setdefault(_value, _index)


cdef inline unsigned char* _put_int(unsigned char* out, unsigned char first, int prefix_bits, size_t value) noexcept:
    """Writes ``value`` with its prefix in the low bits of an octet whose high bits are ``first``."""
    cdef size_t mask = (1 << prefix_bits) - 1
    if value < mask:
        out[0] = first | value
        return out + 1
    out[0] = first | mask
    out += 1
    value -= mask
    while value >= 0x80:
        out[0] = (value & 0x7F) | 0x80
        out += 1
        value >>= 7
    out[0] = value
    return out + 1


cdef inline unsigned char* _put_str(unsigned char* out, bytes data) noexcept:
    """Writes ``data`` as a string literal without Huffman coding."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    out = _put_int(out, 0, 7, n)
    memcpy(out, PyBytes_AS_STRING(data), n)
    return out + n


cdef enum:
    _INT_ROOM = 12  # the most octets an integer of up to 64 bits takes with any prefix, plus a first octet


cdef class HpackEncoder:
    """Encodes header lists without ever adding to the peer's dynamic table.

    The first block opens with a dynamic table size update to 0, which any peer allows; every field is
    then a static index when (name, value) is in the static table, else a literal without indexing
    (with the static index of its name when there is one); strings are not Huffman-coded.
    """

    cdef bint _started
    cdef unsigned char* _scratch  # kept between calls, grown to the largest block so far
    cdef Py_ssize_t _capacity

    def __cinit__(self):
        self._capacity = 256
        self._scratch = <unsigned char*>PyMem_Malloc(self._capacity)
        if self._scratch == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self._scratch)

    cdef unsigned char* _reserve(self, unsigned char* out, Py_ssize_t more) except NULL:
        """out, or where it lands in a grown scratch buffer, with ``more`` bytes of room after it."""
        cdef Py_ssize_t used = out - self._scratch, capacity = self._capacity
        cdef unsigned char* grown
        if used + more <= capacity:
            return out
        while capacity < used + more:
            capacity *= 2
        grown = <unsigned char*>PyMem_Realloc(self._scratch, capacity)
        if grown == NULL:
            raise MemoryError()
        self._scratch, self._capacity = grown, capacity
        return grown + used

    def encode(self, headers):
        cdef unsigned char* out = self._scratch
        cdef object info
        cdef object index
        cdef bytes name, value
        if not self._started:
            out[0] = 0x20
            out += 1
            self._started = True
        for name, value in headers:
            if name is None or value is None:
                raise TypeError("header names and values must be bytes")
            info = _STATIC_NAMES.get(name)
            if info is not None:
                index = (<dict>PyTuple_GET_ITEM(info, 1)).get(value)
                if index is not None:
                    out = self._reserve(out, 1)
                    out[0] = 0x80 | <int>index
                    out += 1
                    continue
            out = self._reserve(out, 2 * _INT_ROOM + PyBytes_GET_SIZE(name) + PyBytes_GET_SIZE(value))
            if info is None:
                out[0] = 0
                out = _put_str(out + 1, name)
            else:
                out = _put_int(out, 0, 4, <object>PyTuple_GET_ITEM(info, 0))
            out = _put_str(out, value)
        return PyBytes_FromStringAndSize(<const char*>self._scratch, out - self._scratch)

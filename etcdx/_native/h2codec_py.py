"""Sans-I/O HTTP/2 framing (RFC 9113) and HPACK (RFC 7541): the pure-Python twin of _h2codec.pyx.

This module is the specification; the compiled module has the same names and behaviour. Everything is
bytes in, values out: no sockets, no clocks, no connection state beyond what a codec must keep (the
frame reader's partial frame, the HPACK decoder's dynamic table).

Errors in what the peer sent raise H2CodecError carrying the HTTP/2 error code the connection must be
closed with (FRAME_SIZE_ERROR, PROTOCOL_ERROR, COMPRESSION_ERROR). Errors in what the caller passes (a
stream id above 2**31 - 1, a payload longer than 2**24 - 1) raise ValueError.

Data taken from the installed ``hpack`` package (facts of RFC 7541, not its algorithms): the static
table (Appendix A) and the Huffman code (Appendix B).
"""

from __future__ import annotations

import struct

from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

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

_MAX_STREAM_ID = 0x7FFFFFFF
_MAX_FRAME_LENGTH = 0xFFFFFF


class H2CodecError(Exception):
    """The peer sent something malformed; ``error_code`` is the HTTP/2 error code to answer with."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


# -- frames ----------------------------------------------------------------------------------------

_FRAME_HEADER = struct.Struct(">BHBBL")  # length as 8 + 16 bits, type, flags, R bit + stream id


def encode_frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """The 9-byte frame header followed by ``payload`` (the caller keeps it within the peer's limit)."""
    length = len(payload)
    if length > _MAX_FRAME_LENGTH:
        raise ValueError(f"frame payload of {length} bytes exceeds 2**24 - 1")
    if not 0 <= stream_id <= _MAX_STREAM_ID:
        raise ValueError(f"stream id {stream_id} out of range")
    if not (0 <= frame_type <= 0xFF and 0 <= flags <= 0xFF):
        raise ValueError(f"frame type {frame_type} or flags {flags} out of range")
    return _FRAME_HEADER.pack(length >> 16, length & 0xFFFF, frame_type, flags, stream_id) + bytes(payload)


def encode_response(stream_id: int, header_block: bytes, head: bytes, body: bytes, trailer_block: bytes) -> bytes:
    """A whole response in one bytes object: HEADERS (END_HEADERS) holding ``header_block``, one DATA frame
    holding ``head`` + ``body``, and HEADERS (END_HEADERS | END_STREAM) holding ``trailer_block``.

    Each payload must fit one frame of the peer's (the caller checks its SETTINGS_MAX_FRAME_SIZE)."""
    return (
        encode_frame(HEADERS, FLAG_END_HEADERS, stream_id, header_block)
        + encode_frame(DATA, 0, stream_id, bytes(head) + bytes(body))
        + encode_frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, stream_id, trailer_block)
    )


class FrameReader:
    """Splits a byte stream into frames; keeps a partial frame until the rest arrives.

    A frame whose declared length exceeds ``max_frame_size`` raises H2CodecError(FRAME_SIZE_ERROR) as
    soon as its header is in; the frames completed before it in the same ``feed`` are dropped with it
    (the connection is being closed) and the bad header stays buffered, so a later ``feed`` raises again.
    """

    def __init__(self, max_frame_size: int = 16384) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        """Every frame completed by ``data`` as (type, flags, stream id without the R bit, payload)."""
        buf = self._buf
        buf += data
        frames = []
        pos = 0
        end = len(buf)
        while end - pos >= FRAME_HEADER_SIZE:
            length_high, length_low, frame_type, flags, stream_id = _FRAME_HEADER.unpack_from(buf, pos)
            length = length_high << 16 | length_low
            if length > self.max_frame_size:
                del buf[:pos]
                raise H2CodecError(
                    FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds the maximum frame size {self.max_frame_size}"
                )
            start = pos + FRAME_HEADER_SIZE
            if end - start < length:
                break
            frames.append((frame_type, flags, stream_id & _MAX_STREAM_ID, bytes(buf[start : start + length])))
            pos = start + length
        del buf[:pos]
        return frames

    def pending(self) -> int:
        """How many bytes are buffered that do not yet make a whole frame."""
        return len(self._buf)


def strip_padding(flags: int, payload: bytes) -> bytes:
    """A DATA or HEADERS payload without its Pad Length byte and padding when FLAG_PADDED is set."""
    if not flags & FLAG_PADDED:
        return payload
    if not payload:
        raise H2CodecError(PROTOCOL_ERROR, "padded frame without a Pad Length byte")
    pad = payload[0]
    if pad >= len(payload):
        raise H2CodecError(PROTOCOL_ERROR, f"padding of {pad} bytes in a payload of {len(payload)} bytes")
    return payload[1 : len(payload) - pad]


def headers_fragment(flags: int, payload: bytes) -> bytes:
    """A HEADERS payload's header block fragment: padding and the 5 priority bytes removed.

    A payload too short for the priority fields is FRAME_SIZE_ERROR (RFC 9113 §4.2: a frame carrying a
    field block).
    """
    fragment = strip_padding(flags, payload)
    if flags & FLAG_PRIORITY:
        if len(fragment) < 5:
            raise H2CodecError(FRAME_SIZE_ERROR, "HEADERS frame too short for its priority fields")
        fragment = fragment[5:]
    return fragment


_SETTING = struct.Struct(">HL")
_U32 = struct.Struct(">L")
_GOAWAY = struct.Struct(">LL")


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """A SETTINGS payload's (identifier, value) pairs in order; values are not range-checked here."""
    if len(payload) % 6:
        raise H2CodecError(FRAME_SIZE_ERROR, f"SETTINGS payload of {len(payload)} bytes is not a multiple of 6")
    return list(_SETTING.iter_unpack(payload))


def encode_settings(settings: list[tuple[int, int]]) -> bytes:
    """A SETTINGS payload holding ``settings`` in order."""
    return b"".join(_SETTING.pack(identifier, value) for identifier, value in settings)


def parse_window_update(payload: bytes) -> int:
    """The window size increment, R bit cleared (0 is returned: the caller decides which error it is)."""
    if len(payload) != 4:
        raise H2CodecError(FRAME_SIZE_ERROR, f"WINDOW_UPDATE payload of {len(payload)} bytes, not 4")
    return _U32.unpack(payload)[0] & _MAX_STREAM_ID


def parse_rst_stream(payload: bytes) -> int:
    """The error code of a RST_STREAM frame."""
    if len(payload) != 4:
        raise H2CodecError(FRAME_SIZE_ERROR, f"RST_STREAM payload of {len(payload)} bytes, not 4")
    return _U32.unpack(payload)[0]


def parse_goaway(payload: bytes) -> tuple[int, int, bytes]:
    """(last stream id with the R bit cleared, error code, additional debug data)."""
    if len(payload) < 8:
        raise H2CodecError(FRAME_SIZE_ERROR, f"GOAWAY payload of {len(payload)} bytes, less than 8")
    last_stream_id, error_code = _GOAWAY.unpack_from(payload)
    return last_stream_id & _MAX_STREAM_ID, error_code, bytes(payload[8:])


# -- HPACK: tables ---------------------------------------------------------------------------------

STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = tuple((bytes(n), bytes(v)) for n, v in HeaderTable.STATIC_TABLE)
_STATIC_LENGTH = len(STATIC_TABLE)  # 61; dynamic entries are indexed from 62 on
ENTRY_OVERHEAD = 32  # RFC 7541 §4.1: an entry's size is 32 + len(name) + len(value)

# Exact (name, value) and name-only matches, each at its lowest static index (1-based).
_STATIC_EXACT: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _index, _entry in enumerate(STATIC_TABLE, 1):
    _STATIC_EXACT.setdefault(_entry, _index)
    _STATIC_NAME.setdefault(_entry[0], _index)


# -- HPACK: Huffman decoding -----------------------------------------------------------------------
#
# The code's binary tree has 257 leaves (256 octets and EOS), so 256 inner nodes, numbered 0..255 with
# the root 0. The decoder reads 4 bits at a time: _HUFFMAN_STEP[node * 16 + nibble] is (next node,
# decoded octet or -1, EOS reached). No code is shorter than 5 bits, so a nibble completes at most one
# octet. A string may end at an inner node only when the bits since the last octet are padding (RFC 7541
# §5.2): at most 7 bits, all ones (the start of EOS); _HUFFMAN_ACCEPT[node] says so.

_EOS = 256


def _huffman_tree() -> list[list[int]]:
    """children[node] = [child for bit 0, child for bit 1]; an inner child is >= 0, a leaf -1 - symbol."""
    children = [[0, 0]]
    for symbol, (code, length) in enumerate(zip(REQUEST_CODES, REQUEST_CODES_LENGTH, strict=True)):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            if children[node][bit] == 0:
                children.append([0, 0])
                children[node][bit] = len(children) - 1
            node = children[node][bit]
        children[node][code & 1] = -1 - symbol
    return children


def _huffman_tables() -> tuple[list[tuple[int, int, bool]], list[bool]]:
    children = _huffman_tree()
    step: list[tuple[int, int, bool]] = []
    for node in range(len(children)):
        for nibble in range(16):
            current, symbol, eos = node, -1, False
            for shift in (3, 2, 1, 0):
                child = children[current][(nibble >> shift) & 1]
                if child >= 0:
                    current = child
                elif -1 - child == _EOS:
                    eos = True
                    break
                else:
                    current, symbol = 0, -1 - child
            step.append((current, symbol, eos))
    accept = [False] * len(children)
    node = 0
    for _ in range(8):  # the all-ones path: padding of 0..7 bits
        accept[node] = True
        node = children[node][1]
    return step, accept


_HUFFMAN_STEP, _HUFFMAN_ACCEPT = _huffman_tables()


def huffman_decode(data: bytes) -> bytes:
    """The octets Huffman-coded in ``data``; bad padding or an EOS symbol raise COMPRESSION_ERROR."""
    step = _HUFFMAN_STEP
    out = bytearray()
    node = 0
    for byte in data:
        node, symbol, eos = step[node << 4 | byte >> 4]
        if symbol >= 0:
            out.append(symbol)
        if not eos:
            node, symbol, eos = step[node << 4 | byte & 15]
            if symbol >= 0:
                out.append(symbol)
        if eos:
            raise H2CodecError(COMPRESSION_ERROR, "Huffman string contains EOS")
    if not _HUFFMAN_ACCEPT[node]:
        raise H2CodecError(COMPRESSION_ERROR, "Huffman string padding is not up to 7 one bits")
    return bytes(out)


# -- HPACK: decoding -------------------------------------------------------------------------------

# RFC 7541 §5.1 lets a decoder bound integers: at most 5 continuation octets and a value below 2**32.
_MAX_INT_CONTINUATIONS = 5
_MAX_INT = 0xFFFFFFFF


def _decode_int(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """(value, position after it) of the integer whose prefix is in block[pos]'s low ``prefix_bits``."""
    mask = (1 << prefix_bits) - 1
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    for _ in range(_MAX_INT_CONTINUATIONS):
        if pos >= len(block):
            raise H2CodecError(COMPRESSION_ERROR, "truncated integer")
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            if value > _MAX_INT:
                raise H2CodecError(COMPRESSION_ERROR, "integer too large")
            return value, pos
        shift += 7
    raise H2CodecError(COMPRESSION_ERROR, "integer too long")


def _decode_str(block: bytes, pos: int) -> tuple[bytes, int]:
    """(octets, position after them) of the string literal at block[pos]."""
    if pos >= len(block):
        raise H2CodecError(COMPRESSION_ERROR, "truncated header field: string expected")
    huffman = block[pos] & 0x80
    length, pos = _decode_int(block, pos, 7)
    end = pos + length
    if end > len(block):
        raise H2CodecError(COMPRESSION_ERROR, f"string of {length} bytes runs past the end of the block")
    raw = block[pos:end]
    return (huffman_decode(raw) if huffman else bytes(raw)), end


# The most a decoded header list may hold, counted as RFC 9113 §6.5.2 counts SETTINGS_MAX_HEADER_LIST_SIZE
# (name + value + 32 per field): a few bytes that refer to one large table entry again and again must not
# expand into megabytes.
DEFAULT_MAX_HEADER_LIST_SIZE = 65536


class HpackDecoder:
    """Decodes header blocks of one connection, keeping the dynamic table between blocks.

    The dynamic table is a list, newest entry first (HPACK index 62), its size accounted per RFC 7541
    §4.1. The peer's encoder changes the table's maximum size with size updates at the start of a block,
    never above the allowed size (what we advertised as SETTINGS_HEADER_TABLE_SIZE). Lowering the allowed
    size does not itself shrink the table: the peer does that with a size update (RFC 7541 §4.2).
    """

    def __init__(self, max_table_size: int = 4096, max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE) -> None:
        self._max_list_size = max_header_list_size
        self._allowed = max_table_size
        self._max_size = max_table_size
        self._size = 0
        self._entries: list[tuple[bytes, bytes]] = []
        self.list_size = 0  # the last decoded list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 6.5.2)

    def set_max_allowed_table_size(self, size: int) -> None:
        """What we advertised as SETTINGS_HEADER_TABLE_SIZE: the bound for the peer's size updates."""
        self._allowed = size

    def _evict_to(self, limit: int) -> None:
        entries = self._entries
        while self._size > limit:
            name, value = entries.pop()
            self._size -= ENTRY_OVERHEAD + len(name) + len(value)

    def _add(self, entry: tuple[bytes, bytes]) -> None:
        size = ENTRY_OVERHEAD + len(entry[0]) + len(entry[1])
        if size > self._max_size:  # §4.4: an entry larger than the table empties it and is not added
            self._entries.clear()
            self._size = 0
            return
        self._evict_to(self._max_size - size)
        self._entries.insert(0, entry)
        self._size += size

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if index == 0:
            raise H2CodecError(COMPRESSION_ERROR, "header index 0")
        if index <= _STATIC_LENGTH:
            return STATIC_TABLE[index - 1]
        dynamic = index - _STATIC_LENGTH - 1
        if dynamic >= len(self._entries):
            raise H2CodecError(COMPRESSION_ERROR, f"header index {index} past the end of the table")
        return self._entries[dynamic]

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The header list of a complete header block (CONTINUATION fragments already joined)."""
        headers: list[tuple[bytes, bytes]] = []
        listed = 0  # the list's size so far, as SETTINGS_MAX_HEADER_LIST_SIZE counts it
        pos = 0
        end = len(block)
        while pos < end:
            byte = block[pos]
            if byte & 0x80:  # §6.1 indexed header field
                index, pos = _decode_int(block, pos, 7)
                entry = self._entry(index)
            elif byte & 0xE0 == 0x20:  # §6.3 dynamic table size update
                if headers:
                    raise H2CodecError(COMPRESSION_ERROR, "table size update after a header field")
                size, pos = _decode_int(block, pos, 5)
                if size > self._allowed:
                    raise H2CodecError(
                        COMPRESSION_ERROR, f"table size update to {size} above the allowed {self._allowed}"
                    )
                self._max_size = size
                self._evict_to(size)
                continue
            else:  # §6.2 literal: with incremental indexing (01), without (0000) or never indexed (0001)
                indexing = byte & 0x40
                index, pos = _decode_int(block, pos, 6 if indexing else 4)
                if index:
                    name = self._entry(index)[0]
                else:
                    name, pos = _decode_str(block, pos)
                value, pos = _decode_str(block, pos)
                entry = (name, value)
                if indexing:
                    self._add(entry)
            listed += ENTRY_OVERHEAD + len(entry[0]) + len(entry[1])
            if listed > self._max_list_size:
                raise H2CodecError(COMPRESSION_ERROR, f"header list larger than {self._max_list_size} bytes")
            headers.append(entry)
        self.list_size = listed
        return headers


# -- HPACK: encoding -------------------------------------------------------------------------------


def _encode_int(out: bytearray, first: int, prefix_bits: int, value: int) -> None:
    """Appends ``value`` with its prefix in the low bits of an octet whose high bits are ``first``."""
    mask = (1 << prefix_bits) - 1
    if value < mask:
        out.append(first | value)
        return
    out.append(first | mask)
    value -= mask
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def _encode_str(out: bytearray, data: bytes) -> None:
    """Appends ``data`` as a string literal without Huffman coding."""
    _encode_int(out, 0x00, 7, len(data))
    out += data


class HpackEncoder:
    """Encodes header lists without ever adding to the peer's dynamic table.

    The first block opens with a dynamic table size update to 0, which any peer allows; every field is
    then a static index when (name, value) is in the static table, else a literal without indexing
    (with the static index of its name when there is one); strings are not Huffman-coded.
    """

    def __init__(self) -> None:
        self._started = False

    def encode(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        out = bytearray()
        if not self._started:
            out.append(0x20)
            self._started = True
        for name, value in headers:
            index = _STATIC_EXACT.get((name, value))
            if index is not None:
                out.append(0x80 | index)
                continue
            index = _STATIC_NAME.get(name)
            if index is None:
                out.append(0x00)
                _encode_str(out, name)
            else:
                _encode_int(out, 0x00, 4, index)
            _encode_str(out, value)
        return bytes(out)

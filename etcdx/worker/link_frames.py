"""The member link's frames: how a read worker relays calls to its member without HTTP/2.

The link is one stream connection (the member's ``<data-dir>/member/link.sock``, mode 0600). Every frame is a
4-byte little-endian length, then that many bytes: a kind (u8), then the kind's fields. A call id names one
call of the worker's, unary or stream, for as long as it runs.

Unary calls (no task per call on either side):

- CALL, worker to member: call id (u32), timeout in milliseconds (u32; NO_TIMEOUT: none), path length (u16),
  metadata length (u32), the path (UTF-8), the metadata (pairs of u16 name length, u32 value length, name,
  value; UTF-8), and the request message (the rest);
- ANSWER, member to worker: call id (u32), gRPC status code (u16), then the response message if the code is 0
  (OK), else the status text (UTF-8).

Streams (any method; the member runs it as its HTTP/2 server would, link_member.py):

- OPEN, worker to member: a CALL's fields with no message; the call's messages follow as MESSAGE frames;
- MESSAGE, either way: call id (u32), then one gRPC message;
- HALF_CLOSE, worker to member: call id; the client sends no more messages;
- CANCEL, worker to member: call id; the client gave up (reset, deadline, connection gone). The member ends
  the call and sends nothing more for it;
- END, member to worker: an ANSWER's fields; the call's status, its last frame;
- CREDIT, either way: call id (u32), bytes (u32): the sender may send that many more message bytes on the
  call. Each side starts with STREAM_WINDOW of credit for each direction of each stream and may send a MESSAGE
  only while its credit is above zero (one message may take it below), so neither buffers more than a window
  and a message per stream: a client that stops reading holds back its own stream only.

Pure: no I/O. ``take_frames`` bounds a frame's size, so a peer cannot make the other side buffer without limit.
"""

from __future__ import annotations

import struct

_LENGTH = struct.Struct("<I")
_REQUEST = struct.Struct("<BIIHI")
_RESPONSE = struct.Struct("<BIH")
_ID = struct.Struct("<BI")
_CREDIT = struct.Struct("<BII")
_PAIR = struct.Struct("<HI")

CALL, ANSWER, OPEN, MESSAGE, HALF_CLOSE, CANCEL, END, CREDIT = range(8)
STREAM_WINDOW = 256 * 1024
NO_TIMEOUT = 0xFFFFFFFF
# A worker's own calls (member_side.py), not a client's, so no /metrics series counts them: its read barrier,
# and the identity refresh (the member's response header, without a read).
BARRIER_PATH = "/etcdx.worker.Member/Barrier"
IDENTITY_PATH = "/etcdx.worker.Member/Identity"
WORKER_PATHS = frozenset((BARRIER_PATH, IDENTITY_PATH))
# Starts the text of a failure that says "not here" rather than answering a read: the link's own, and the
# member's refusals to run a barrier. A worker relays a read whose barrier failed so (local_range.py).
RELAY_MARK = "etcdx: "
MAX_TIMEOUT_MS = NO_TIMEOUT - 1


class LinkError(Exception):
    """A frame the link's protocol does not allow: the connection must be closed."""


def kind(frame: bytes) -> int:
    """The kind of a frame's body; LinkError if it is empty."""
    if not frame:
        raise LinkError("empty frame")
    return frame[0]


def encode_request(
    call_id: int, timeout_ms: int, path: str, metadata: dict[str, str], message: bytes, kind: int = CALL
) -> bytes:
    """A CALL frame, or with ``kind`` OPEN (and no message) an OPEN frame."""
    encoded_path = path.encode()
    pairs = bytearray()
    for name, value in metadata.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        pairs += _PAIR.pack(len(name_bytes), len(value_bytes))
        pairs += name_bytes
        pairs += value_bytes
    head = _REQUEST.pack(kind, call_id, timeout_ms, len(encoded_path), len(pairs))
    size = len(head) + len(encoded_path) + len(pairs) + len(message)
    return b"".join((_LENGTH.pack(size), head, encoded_path, pairs, message))


def decode_request(frame: bytes) -> tuple[int, int, str, dict[str, str], bytes]:
    """(call id, timeout ms, path, metadata, message) of a CALL or OPEN frame's body; LinkError if malformed."""
    if len(frame) < _REQUEST.size:
        raise LinkError("short request frame")
    _, call_id, timeout_ms, path_size, pairs_size = _REQUEST.unpack_from(frame)
    offset = _REQUEST.size
    end = offset + path_size + pairs_size
    if end > len(frame):
        raise LinkError("request frame shorter than its path and metadata")
    try:
        path = frame[offset : offset + path_size].decode()
        metadata: dict[str, str] = {}
        offset += path_size
        while offset < end:
            if offset + _PAIR.size > end:
                raise LinkError("truncated metadata pair")
            name_size, value_size = _PAIR.unpack_from(frame, offset)
            offset += _PAIR.size
            if offset + name_size + value_size > end:
                raise LinkError("truncated metadata pair")
            name = frame[offset : offset + name_size].decode()
            offset += name_size
            metadata[name] = frame[offset : offset + value_size].decode()
            offset += value_size
    except UnicodeDecodeError as exc:
        raise LinkError("request frame text is not UTF-8") from exc
    return call_id, timeout_ms, path, metadata, frame[end:]


def encode_response(call_id: int, code: int, payload: bytes, kind: int = ANSWER) -> bytes:
    """An ANSWER frame (``payload``: the response message if ``code`` is 0, else the status text, encoded), or
    with ``kind`` END a stream's END frame (``payload``: the status text)."""
    return b"".join((_LENGTH.pack(_RESPONSE.size + len(payload)), _RESPONSE.pack(kind, call_id, code), payload))


def decode_response(frame: bytes) -> tuple[int, int, bytes]:
    """(call id, status code, message or status text) of an ANSWER or END frame's body; LinkError if malformed."""
    if len(frame) < _RESPONSE.size:
        raise LinkError("short response frame")
    _, call_id, code = _RESPONSE.unpack_from(frame)
    return call_id, code, frame[_RESPONSE.size :]


def encode_message(call_id: int, message: bytes) -> bytes:
    return b"".join((_LENGTH.pack(_ID.size + len(message)), _ID.pack(MESSAGE, call_id), message))


def decode_message(frame: bytes) -> tuple[int, bytes]:
    """(call id, message) of a MESSAGE frame's body; LinkError if malformed."""
    if len(frame) < _ID.size:
        raise LinkError("short message frame")
    return _ID.unpack_from(frame)[1], frame[_ID.size :]


def encode_signal(kind: int, call_id: int) -> bytes:
    """A HALF_CLOSE or CANCEL frame."""
    return _LENGTH.pack(_ID.size) + _ID.pack(kind, call_id)


def decode_signal(frame: bytes) -> int:
    """The call id of a HALF_CLOSE or CANCEL frame's body; LinkError if malformed."""
    if len(frame) != _ID.size:
        raise LinkError("malformed signal frame")
    return _ID.unpack_from(frame)[1]


def encode_credit(call_id: int, size: int) -> bytes:
    return _LENGTH.pack(_CREDIT.size) + _CREDIT.pack(CREDIT, call_id, size)


def decode_credit(frame: bytes) -> tuple[int, int]:
    """(call id, bytes) of a CREDIT frame's body; LinkError if malformed."""
    if len(frame) != _CREDIT.size:
        raise LinkError("malformed credit frame")
    _, call_id, size = _CREDIT.unpack(frame)
    return call_id, size


def take_frames(buffer: bytearray, max_frame: int) -> list[bytes]:
    """Removes the complete frames at the start of ``buffer`` and returns their bodies; a partial frame stays.
    LinkError if a frame announces more than ``max_frame`` bytes."""
    frames = []
    offset = 0
    available = len(buffer)
    while available - offset >= _LENGTH.size:
        (size,) = _LENGTH.unpack_from(buffer, offset)
        if size > max_frame:
            raise LinkError(f"frame of {size} bytes, over the limit of {max_frame}")
        start = offset + _LENGTH.size
        if available - start < size:
            break
        frames.append(bytes(buffer[start : start + size]))
        offset = start + size
    if offset:
        del buffer[:offset]
    return frames

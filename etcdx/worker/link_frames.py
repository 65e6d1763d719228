"""The member link's frames: how a read worker relays unary calls to its member without HTTP/2.

The link is one stream connection (the member's ``<data-dir>/member/link.sock``, mode 0600), on which
a worker sends request frames and the member answers each with a response frame of the same call id, in any
order. Every frame is a 4-byte little-endian length, then that many bytes:

- request: call id (u32), timeout in milliseconds (u32; NO_TIMEOUT: none), path length (u16), metadata length
  (u32), the path (UTF-8), the metadata (pairs of u16 name length, u32 value length, name, value; UTF-8), and
  the request message (the rest);
- response: call id (u32), gRPC status code (u16), then the response message if the code is 0 (OK), else the
  status text (UTF-8).

Pure: no I/O. ``take_frames`` bounds a frame's size, so a peer cannot make the other side buffer without limit.
"""

from __future__ import annotations

import struct

_LENGTH = struct.Struct("<I")
_REQUEST = struct.Struct("<IIHI")
_RESPONSE = struct.Struct("<IH")
_PAIR = struct.Struct("<HI")
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


def encode_request(call_id: int, timeout_ms: int, path: str, metadata: dict[str, str], message: bytes) -> bytes:
    encoded_path = path.encode()
    pairs = bytearray()
    for name, value in metadata.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        pairs += _PAIR.pack(len(name_bytes), len(value_bytes))
        pairs += name_bytes
        pairs += value_bytes
    head = _REQUEST.pack(call_id, timeout_ms, len(encoded_path), len(pairs))
    size = len(head) + len(encoded_path) + len(pairs) + len(message)
    return b"".join((_LENGTH.pack(size), head, encoded_path, pairs, message))


def decode_request(frame: bytes) -> tuple[int, int, str, dict[str, str], bytes]:
    """(call id, timeout ms, path, metadata, message) of a request frame's body; LinkError if it is malformed."""
    if len(frame) < _REQUEST.size:
        raise LinkError("short request frame")
    call_id, timeout_ms, path_size, pairs_size = _REQUEST.unpack_from(frame)
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


def encode_response(call_id: int, code: int, payload: bytes) -> bytes:
    """``payload``: the response message if ``code`` is 0, else the status text, encoded."""
    return b"".join((_LENGTH.pack(_RESPONSE.size + len(payload)), _RESPONSE.pack(call_id, code), payload))


def decode_response(frame: bytes) -> tuple[int, int, bytes]:
    """(call id, status code, message or status text) of a response frame's body; LinkError if malformed."""
    if len(frame) < _RESPONSE.size:
        raise LinkError("short response frame")
    call_id, code = _RESPONSE.unpack_from(frame)
    return call_id, code, frame[_RESPONSE.size :]


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

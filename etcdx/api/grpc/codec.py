"""Protobuf decoding at the service boundary, failing as grpc-go's codec does."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from etcdx.errors import EtcdError, StatusCode

M = TypeVar("M", bound=Message)

_TRUNCATED = "unexpected EOF"
_INVALID = "proto: cannot parse invalid wire-format data"


def decode(message_type: type[M], data: bytes) -> M:
    """Parses ``data`` as ``message_type``; a malformed message is the client's error (INTERNAL, as grpc-go)."""
    try:
        return message_type.FromString(data)
    except DecodeError:
        reason = _TRUNCATED if _is_truncated(data) else _INVALID
        raise EtcdError(StatusCode.INTERNAL, f"grpc: error unmarshalling request: {reason}") from None


def _is_truncated(data: bytes) -> bool:
    """True when a top-level field runs past the end of ``data`` (Go's proto reports that as EOF)."""
    pos, end = 0, len(data)

    def varint() -> int | None:
        nonlocal pos
        value = shift = 0
        while pos < end:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        return None

    while pos < end:
        tag = varint()
        if tag is None:
            return True
        wire_type = tag & 7
        if wire_type == 0:
            if varint() is None:
                return True
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        elif wire_type == 2:
            length = varint()
            if length is None:
                return True
            pos += length
        else:
            return False
    return pos > end

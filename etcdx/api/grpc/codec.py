"""Protobuf decoding at the service boundary, failing as grpc-go's codec does."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from etcdx.api.grpc.gogo_errors import unmarshal_error
from etcdx.errors import EtcdError, StatusCode

M = TypeVar("M", bound=Message)


def decode(message_type: type[M], data: bytes) -> M:
    """Parses ``data`` as ``message_type``; a malformed message is the client's error (INTERNAL, as
    grpc-go), with the text etcd's gogo-generated unmarshaller gives for those bytes."""
    try:
        return message_type.FromString(data)
    except DecodeError:
        reason = unmarshal_error(message_type.DESCRIPTOR, data) or "proto: cannot parse invalid wire-format data"
        raise EtcdError(StatusCode.INTERNAL, f"grpc: error unmarshalling request: {reason}") from None

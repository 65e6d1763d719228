"""What a gRPC server reads from a request's header list (gRPC over HTTP/2): the pure-Python twin of
_grpchead.pyx (and its specification).

Names and values are bytes as HPACK decoded them (the HTTP/2 driver has checked the fields already). A name
that appears more than once counts with its last value.
"""

from __future__ import annotations

# Fields of the transport itself: never handed to the application as metadata.
TRANSPORT_HEADERS = frozenset(
    [b"te", b"content-type", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding", b"user-agent"]
)


def request_head(headers: list[tuple[bytes, bytes]]) -> tuple[str, bool, bytes | None, dict[str, str]]:
    """(the :path as text, whether it is a gRPC call: POST with an application/grpc content type, the
    grpc-timeout value or None, the metadata: every other regular field, names and values as latin-1 text)."""
    path = ""
    metadata: dict[str, str] = {}
    timeout = None
    is_post = is_grpc = False
    for name, value in headers:
        if name == b":path":
            path = value.decode("utf-8", "replace")
        elif name == b":method":
            is_post = value == b"POST"
        elif name == b"content-type":
            is_grpc = value == b"application/grpc" or value.startswith((b"application/grpc+", b"application/grpc;"))
        elif name == b"grpc-timeout":
            timeout = value
        elif not name.startswith(b":") and name not in TRANSPORT_HEADERS:
            metadata[name.decode("latin-1")] = value.decode("latin-1")
    return path, is_post and is_grpc, timeout, metadata

"""Field validity of HTTP/2 requests and trailers received by a server (RFC 9113 8.2 and 8.3.1).

A request or trailer section that breaks a rule here is malformed: the driver answers it with
RST_STREAM(PROTOCOL_ERROR) and the application never sees it. Names and values are bytes as HPACK
decoded them.
"""

from __future__ import annotations

import re

# RFC 9110 5.1 token characters, lowercase only (RFC 9113 8.2.1: an uppercase name is malformed).
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
# RFC 9113 8.2.1: no NUL, CR or LF anywhere, no SP or HTAB at either end.
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")
# Names every gRPC request carries: valid by construction, so they skip the name pattern.
_COMMON_NAMES = frozenset(
    [b"content-type", b"te", b"user-agent", b"grpc-timeout", b"grpc-accept-encoding", b"grpc-encoding"]
)
_REQUEST_PSEUDO = frozenset([b":method", b":scheme", b":path", b":authority"])
_REQUIRED_PSEUDO = 3  # :method, :scheme and :path (RFC 9113 8.3.1; a CONNECT request is not served here)
# RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2.
_CONNECTION_SPECIFIC = frozenset([b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"])


def request_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    """What makes ``headers`` a malformed request, or None when it is well-formed."""
    seen_pseudo: set[bytes] = set()
    regular = False
    for name, value in headers:
        if name[:1] == b":":
            if regular:
                return f"pseudo-header {name!r} after a regular field"
            if name not in _REQUEST_PSEUDO:
                return f"pseudo-header {name!r} is not a request pseudo-header"
            if name in seen_pseudo:
                return f"pseudo-header {name!r} repeated"
            if not value and name != b":authority":
                return f"pseudo-header {name!r} is empty"
            seen_pseudo.add(name)
        else:
            regular = True
            problem = _field_problem(name, value)
            if problem is not None:
                return problem
        if _BAD_VALUE.search(value):
            return f"value of {name!r} has NUL, CR, LF or surrounding whitespace"
    if len(seen_pseudo - {b":authority"}) < _REQUIRED_PSEUDO:
        return "request without :method, :scheme and :path"
    return None


def trailers_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    """What makes ``headers`` a malformed trailer section (no pseudo-headers there), or None."""
    for name, value in headers:
        if name[:1] == b":":
            return f"pseudo-header {name!r} in trailers"
        problem = _field_problem(name, value)
        if problem is not None:
            return problem
        if _BAD_VALUE.search(value):
            return f"value of {name!r} has NUL, CR, LF or surrounding whitespace"
    return None


def _field_problem(name: bytes, value: bytes) -> str | None:
    if name in _COMMON_NAMES:
        if name == b"te" and value != b"trailers":
            return "te other than 'trailers'"
        return None
    if not _NAME.fullmatch(name):
        return f"field name {name!r} is not a lowercase token"
    if name in _CONNECTION_SPECIFIC:
        return f"connection-specific field {name!r}"
    return None

"""Field validity of HTTP/2 requests and trailers received by a server (RFC 9113 8.2 and 8.3.1): the
pure-Python twin of _h2fields.pyx (and its specification).

A request or trailer section that breaks a rule here is malformed: the driver answers it with
RST_STREAM(PROTOCOL_ERROR). Names and values are bytes as HPACK decoded them.
"""

from __future__ import annotations

import re

# RFC 9110 5.1 token characters, lowercase only (RFC 9113 8.2.1: an uppercase name is malformed).
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+").fullmatch
# RFC 9113 8.2.1: no NUL, CR or LF anywhere in a value (and no SP or HTAB at either end, checked apart).
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00\r\n]").search
_EDGE_WHITESPACE = b" \t"
# Names every gRPC request carries: valid by construction, so they skip the name pattern.
_COMMON_NAMES = frozenset(
    [b"content-type", b"te", b"user-agent", b"grpc-timeout", b"grpc-accept-encoding", b"grpc-encoding"]
)
# Request pseudo-headers (RFC 9113 8.3.1) as bits; a CONNECT request is not served here, so :method,
# :scheme and :path are all required.
_METHOD, _SCHEME, _PATH, _AUTHORITY = 1, 2, 4, 8
_PSEUDO_BITS = {b":method": _METHOD, b":scheme": _SCHEME, b":path": _PATH, b":authority": _AUTHORITY}
_REQUIRED = _METHOD | _SCHEME | _PATH
# RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2.
_CONNECTION_SPECIFIC = frozenset([b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"])
# Valid fields a checker remembers: at most this many, each at most this long (name and value): a bounded
# memory per connection.
_REMEMBERED_FIELDS, _REMEMBERED_LENGTH = 256, 128


class FieldChecker:
    """Checks the requests and trailers of one connection. Short fields found valid are remembered, since a
    client repeats most of its fields on every request; at _REMEMBERED_FIELDS the memory starts over."""

    def __init__(self) -> None:
        self._valid: set[tuple[bytes, bytes]] = set()

    def request_problem(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """What makes ``headers`` a malformed request, or None when it is well-formed."""
        seen = 0
        regular = False
        for field in headers:
            name = field[0]
            if name[:1] == b":":
                bit = _PSEUDO_BITS.get(name)
                if bit is None:
                    return f"pseudo-header {name!r} is not a request pseudo-header"
                if regular:
                    return f"pseudo-header {name!r} after a regular field"
                if seen & bit:
                    return f"pseudo-header {name!r} repeated"
                if not field[1] and bit != _AUTHORITY:
                    return f"pseudo-header {name!r} is empty"
                seen |= bit
            else:
                regular = True
            if field not in self._valid:
                problem = self._check(field)
                if problem is not None:
                    return problem
        if seen & _REQUIRED != _REQUIRED:
            return "request without :method, :scheme and :path"
        return None

    def trailers_problem(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """What makes ``headers`` a malformed trailer section (no pseudo-headers there), or None."""
        for field in headers:
            if field[0][:1] == b":":
                return f"pseudo-header {field[0]!r} in trailers"
            if field not in self._valid:
                problem = self._check(field)
                if problem is not None:
                    return problem
        return None

    def _check(self, field: tuple[bytes, bytes]) -> str | None:
        """What is wrong with one field (a pseudo-header's name is known good already), or None."""
        name, value = field
        if _FORBIDDEN_IN_VALUE(value) is not None or len(value.strip(_EDGE_WHITESPACE)) != len(value):
            return f"value of {name!r} has NUL, CR, LF or surrounding whitespace"
        if name[:1] != b":":
            if name == b"te" and value != b"trailers":
                return "te other than 'trailers'"
            if name not in _COMMON_NAMES and (_NAME(name) is None or name in _CONNECTION_SPECIFIC):
                return f"field name {name!r} is not a lowercase token or is connection-specific"
        if len(name) + len(value) <= _REMEMBERED_LENGTH:
            if len(self._valid) >= _REMEMBERED_FIELDS:
                self._valid.clear()
            self._valid.add(field)
        return None

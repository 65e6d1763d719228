"""The --auth-token value, parsed as etcd parses it: "simple" or "jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...".

The first comma-separated field is the token type; each later field is one ``name=value`` pair
(exactly one "=", no name twice). For jwt the known names are pub-key, priv-key (file paths: the
caller reads the files and hands the bytes to JwtTokens), sign-method (required) and ttl (a Go
duration such as "5m", "1h30m", "300s"; default 5 minutes). An empty value means no token provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SIMPLE = "simple"
JWT = "jwt"
NONE = ""

JWT_DEFAULT_TTL_SECONDS = 300.0
_JWT_OPTIONS = ("sign-method", "pub-key", "priv-key", "ttl")


class AuthOptionsError(ValueError):
    """A bad --auth-token value; the text is etcd's."""


ERR_INVALID_AUTH_OPTS = "auth: invalid auth options"
ERR_INVALID_AUTH_METHOD = "auth: invalid auth signature method"


@dataclass(frozen=True, slots=True)
class TokenOptions:
    kind: str
    sign_method: str = ""
    public_key_path: str = ""
    private_key_path: str = ""
    ttl_seconds: float = JWT_DEFAULT_TTL_SECONDS


def parse_auth_token(value: str) -> TokenOptions:
    """Parse an --auth-token value; raises AuthOptionsError."""
    fields = value.split(",")
    kind, pairs = fields[0], {}
    for field in fields[1:]:
        parts = field.split("=")
        if len(parts) != 2 or parts[0] in pairs:
            raise AuthOptionsError(ERR_INVALID_AUTH_OPTS)
        pairs[parts[0]] = parts[1]
    if kind in (SIMPLE, NONE):
        return TokenOptions(kind)
    if kind != JWT:
        raise AuthOptionsError(ERR_INVALID_AUTH_OPTS)
    for name in pairs:
        if name not in _JWT_OPTIONS:
            raise AuthOptionsError(f"unknown token option: {name}")
    ttl = JWT_DEFAULT_TTL_SECONDS
    if pairs.get("ttl"):
        try:
            ttl = parse_go_duration(pairs["ttl"])
        except ValueError as exc:
            raise AuthOptionsError(ERR_INVALID_AUTH_OPTS) from exc
    method = pairs.get("sign-method", "")
    if not method:
        raise AuthOptionsError(ERR_INVALID_AUTH_METHOD)
    return TokenOptions(JWT, method, pairs.get("pub-key", ""), pairs.get("priv-key", ""), ttl)


_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go time.ParseDuration string ("1h30m", "1.5s", "-2m", "0"); raises ValueError."""
    sign, body = 1.0, text
    if body[:1] in ("-", "+"):
        sign, body = (-1.0 if body[0] == "-" else 1.0), body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"time: invalid duration {text!r}")
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return sign * total

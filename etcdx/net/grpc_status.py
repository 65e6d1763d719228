"""gRPC header codecs: grpc-message percent-encoding and grpc-timeout parsing (pure)."""

from __future__ import annotations

_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def encode_grpc_message(text: str) -> bytes:
    """Percent-encodes every byte outside printable ASCII, and '%' itself (gRPC over HTTP/2 spec)."""
    raw = text.encode("utf-8")
    if all(0x20 <= b <= 0x7E and b != 0x25 for b in raw):
        return raw
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)


def parse_grpc_timeout(value: bytes) -> float | None:
    """Seconds from a grpc-timeout value such as b"100m"; None if malformed."""
    if len(value) < 2 or value[-1:] not in _UNITS or not value[:-1].isdigit() or len(value) > 9:
        return None
    return int(value[:-1]) * _UNITS[value[-1:]]

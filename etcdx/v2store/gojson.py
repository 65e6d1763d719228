"""JSON as Go's encoding/json writes it: no spaces, fields in the given order, and Go's string escaping
(<, > and & as \\u003c, \\u003e, \\u0026; U+2028 and U+2029 escaped; control characters other than \\n, \\r
and \\t as \\u00XX; other non-ASCII text as UTF-8)."""

from __future__ import annotations

import re

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\u2028": "\\u2028", "\u2029": "\\u2029"}
for _c in "<>&":
    _ESCAPES[_c] = f"\\u{ord(_c):04x}"
for _i in range(0x20):
    _ESCAPES.setdefault(chr(_i), f"\\u{_i:04x}")
_TABLE = str.maketrans(_ESCAPES)
_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_string(text: str) -> str:
    # A lone surrogate (a byte of text that was not valid UTF-8) is what Go writes as U+FFFD.
    return '"' + _SURROGATE.sub("\ufffd", text.translate(_TABLE)) + '"'


def _encode(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(encode_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(encode_string(key))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def encode(value: object) -> bytes:
    """``value`` (dicts, lists, str, int, bool, None) as compact Go-style JSON bytes."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")

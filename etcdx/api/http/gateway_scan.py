"""A JSON reader that fails as Go's encoding/json does, for the /v3 gateway's request bodies.

etcd's gateway reads the first JSON value of a body with a json.Decoder and hands each piece to
json.Unmarshal, so a client sees Go's texts for bad JSON ("invalid character 'x' looking for beginning of
value", "unexpected EOF", ...). ``read_value`` parses one value starting at an offset and returns it as a
tree of ``Node`` (which keeps each number's and string's source text, as Go's RawMessage does) and the offset
after it; it raises ``GoJsonError`` with Go's text at the first byte Go's scanner refuses.

Contract: ``data`` is bytes; the scanner works on bytes, as Go's does (a byte >= 0x80 inside a string is
taken as it is). At the end of the data inside a value, the text is ``eof_text`` ("unexpected EOF" for a
Decoder, "unexpected end of JSON input" for json.Unmarshal).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

WHITESPACE = b" \t\r\n"
DIGITS = b"0123456789"
HEX = b"0123456789abcdefABCDEF"
DECODER_EOF = "unexpected EOF"
UNMARSHAL_EOF = "unexpected end of JSON input"


class GoJsonError(Exception):
    """Bad JSON: the message is Go's text."""


@dataclass(frozen=True)
class Node:
    """One JSON value: kind is "object" (value: list of (key, Node), in order), "array" (list of Node),
    "string" (the decoded str), "number", "bool" (a bool) or "null" (None); ``raw`` is its source bytes."""

    kind: str
    value: object
    raw: bytes


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(raw: bytes) -> str:
    """A checked string literal's value as Go decodes it: invalid UTF-8 and unpaired surrogate escapes become
    U+FFFD."""
    return _SURROGATE.sub("\ufffd", json.loads(raw.decode("utf-8", "replace")))


def quote_char(c: int) -> str:
    """Go's quoteChar: how its scanner names a byte in an error."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    return "'" + _go_quote_rune(c) + "'"


def _go_quote_rune(c: int) -> str:
    special = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 92: "\\\\"}
    if c in special:
        return special[c]
    if c < 0x20 or c == 0x7F:
        return f"\\x{c:02x}"
    if 0x80 <= c < 0xA0 or c == 0xAD:  # Go's string(byte) is the rune U+0080..U+00FF; these are not printable
        return f"\\u{c:04x}"
    return chr(c)


class _Reader:
    def __init__(self, data: bytes, eof_text: str) -> None:
        self.data = data
        self.eof_text = eof_text

    def fail(self, pos: int, context: str):
        if pos >= len(self.data):
            raise GoJsonError(self.eof_text)
        raise GoJsonError(f"invalid character {quote_char(self.data[pos])} {context}")

    def skip(self, pos: int) -> int:
        data = self.data
        while pos < len(data) and data[pos] in WHITESPACE:
            pos += 1
        return pos

    def value(self, pos: int) -> tuple[Node, int]:
        pos = self.skip(pos)
        if pos >= len(self.data):
            self.fail(pos, "")
        c = self.data[pos]
        if c == ord("{"):
            return self.object(pos)
        if c == ord("["):
            return self.array(pos)
        if c == ord('"'):
            end = self.string_end(pos)
            raw = self.data[pos:end]
            return Node("string", _text(raw), raw), end
        if c == ord("-") or c in DIGITS:
            end = self.number_end(pos)
            return Node("number", None, self.data[pos:end]), end
        for word, value in ((b"true", True), (b"false", False), (b"null", None)):
            if c == word[0]:
                for i in range(1, len(word)):
                    if pos + i >= len(self.data) or self.data[pos + i] != word[i]:
                        self.fail(pos + i, f"in literal {word.decode()} (expecting {quote_char(word[i])})")
                kind = "null" if value is None else "bool"
                return Node(kind, value, word), pos + len(word)
        self.fail(pos, "looking for beginning of value")
        raise AssertionError  # fail raises

    def object(self, pos: int) -> tuple[Node, int]:
        start, pos = pos, self.skip(pos + 1)
        items: list[tuple[str, Node]] = []
        if pos < len(self.data) and self.data[pos] == ord("}"):
            return Node("object", items, self.data[start : pos + 1]), pos + 1
        while True:
            if pos >= len(self.data) or self.data[pos] != ord('"'):
                self.fail(pos, "looking for beginning of object key string")
            end = self.string_end(pos)
            key = _text(self.data[pos:end])
            pos = self.skip(end)
            if pos >= len(self.data) or self.data[pos] != ord(":"):
                self.fail(pos, "after object key")
            node, pos = self.value(pos + 1)
            items.append((key, node))
            pos = self.skip(pos)
            if pos < len(self.data) and self.data[pos] == ord("}"):
                return Node("object", items, self.data[start : pos + 1]), pos + 1
            if pos >= len(self.data) or self.data[pos] != ord(","):
                self.fail(pos, "after object key:value pair")
            pos = self.skip(pos + 1)

    def array(self, pos: int) -> tuple[Node, int]:
        start, pos = pos, self.skip(pos + 1)
        items: list[Node] = []
        if pos < len(self.data) and self.data[pos] == ord("]"):
            return Node("array", items, self.data[start : pos + 1]), pos + 1
        while True:
            node, pos = self.value(pos)
            items.append(node)
            pos = self.skip(pos)
            if pos < len(self.data) and self.data[pos] == ord("]"):
                return Node("array", items, self.data[start : pos + 1]), pos + 1
            if pos >= len(self.data) or self.data[pos] != ord(","):
                self.fail(pos, "after array element")
            pos += 1

    def string_end(self, pos: int) -> int:
        data, pos = self.data, pos + 1
        while True:
            if pos >= len(data):
                self.fail(pos, "")
            c = data[pos]
            if c == ord('"'):
                return pos + 1
            if c < 0x20:
                self.fail(pos, "in string literal")
            if c == ord("\\"):
                pos += 1
                if pos >= len(data) or data[pos] not in b'"\\/bfnrtu':
                    self.fail(pos, "in string escape code")
                if data[pos] == ord("u"):
                    for i in range(1, 5):
                        if pos + i >= len(data) or data[pos + i] not in HEX:
                            self.fail(pos + i, "in \\u hexadecimal character escape")
                    pos += 4
            pos += 1

    def number_end(self, pos: int) -> int:
        data = self.data
        if data[pos] == ord("-"):
            pos += 1
            if pos >= len(data) or data[pos] not in DIGITS:
                self.fail(pos, "in numeric literal")
        if data[pos] == ord("0"):
            pos += 1
        else:
            while pos < len(data) and data[pos] in DIGITS:
                pos += 1
        if pos < len(data) and data[pos] == ord("."):
            pos += 1
            if pos >= len(data) or data[pos] not in DIGITS:
                self.fail(pos, "after decimal point in numeric literal")
            while pos < len(data) and data[pos] in DIGITS:
                pos += 1
        if pos < len(data) and data[pos] in b"eE":
            pos += 1
            if pos < len(data) and data[pos] in b"+-":
                pos += 1
            if pos >= len(data) or data[pos] not in DIGITS:
                self.fail(pos, "in exponent of numeric literal")
            while pos < len(data) and data[pos] in DIGITS:
                pos += 1
        return pos


def read_value(data: bytes, pos: int = 0, eof_text: str = DECODER_EOF) -> tuple[Node, int]:
    """The JSON value at ``data[pos:]`` (after whitespace) and the offset just past it."""
    return _Reader(data, eof_text).value(pos)


def at_end(data: bytes, pos: int) -> bool:
    """Only whitespace is left from ``pos`` (a Decoder there would read io.EOF)."""
    return _Reader(data, DECODER_EOF).skip(pos) >= len(data)


def unmarshal(data: bytes) -> Node:
    """Go's json.Unmarshal view of ``data``: exactly one value, nothing but whitespace after it."""
    reader = _Reader(data, UNMARSHAL_EOF)
    node, pos = reader.value(0)
    pos = reader.skip(pos)
    if pos < len(data):
        reader.fail(pos, "after top-level value")
    return node

"""grpc-gateway's JSON mapping of protobuf messages, as etcd 3.5.1 serves it (grpc-gateway v1 with golang/protobuf's
jsonpb, OrigName on, EmitDefaults off).

Output (``to_json``): fields in declaration order under their .proto names; a field at its zero value (false, 0,
"", empty, enum 0, absent message) is left out; int64/uint64 kinds as decimal strings, 32-bit ints as numbers,
bytes as standard base64 with padding, enums by name (a number the enum does not name as the number), strings
escaped as Go's encoding/json escapes them (<, >, & and U+2028/9 too).

Input (``from_json``): a request body's first JSON value, read as jsonpb reads it, with its error texts: an empty
body is the empty message; a field is found by its .proto name or its JSON (lowerCamel) name, other keys are
ignored, the last of duplicate keys wins, null leaves a field unset; int fields take a number or a quoted
number, enums a name or a number, bytes standard padded base64.
"""

from __future__ import annotations

import base64
import re

from google.protobuf.descriptor import FieldDescriptor as FD
from google.protobuf.message import Message

from etcdx.api.http.gateway_scan import DECODER_EOF, GoJsonError, Node, at_end, read_value, unmarshal

_INT_TYPES = {
    FD.TYPE_INT64: ("int64", -(2**63), 2**63 - 1),
    FD.TYPE_SINT64: ("int64", -(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: ("int64", -(2**63), 2**63 - 1),
    FD.TYPE_UINT64: ("uint64", 0, 2**64 - 1),
    FD.TYPE_FIXED64: ("uint64", 0, 2**64 - 1),
    FD.TYPE_INT32: ("int32", -(2**31), 2**31 - 1),
    FD.TYPE_SINT32: ("int32", -(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: ("int32", -(2**31), 2**31 - 1),
    FD.TYPE_UINT32: ("uint32", 0, 2**32 - 1),
    FD.TYPE_FIXED32: ("uint32", 0, 2**32 - 1),
}
_QUOTED_OUTPUT = {FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64, FD.TYPE_UINT64, FD.TYPE_FIXED64}
_INTEGER = re.compile(rb"-?(0|[1-9][0-9]*)")


# -- output ------------------------------------------------------------------------------------------------


def to_json(message: Message) -> str:
    parts = []
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.is_repeated:
            if not value:
                continue
            text = "[" + ",".join(_value_json(field, item) for item in value) + "]"
        elif field.type == FD.TYPE_MESSAGE or field.containing_oneof is not None:
            if not message.HasField(field.name):
                continue
            text = _value_json(field, value)
        elif value == field.default_value:
            continue
        else:
            text = _value_json(field, value)
        parts.append(f'"{field.name}":{text}')
    return "{" + ",".join(parts) + "}"


def _value_json(field: FD, value) -> str:
    kind = field.type
    if kind == FD.TYPE_MESSAGE:
        return to_json(value)
    if kind in _QUOTED_OUTPUT:
        return f'"{value}"'
    if kind in _INT_TYPES:
        return str(value)
    if kind == FD.TYPE_BOOL:
        return "true" if value else "false"
    if kind == FD.TYPE_BYTES:
        return '"' + base64.b64encode(value).decode() + '"'
    if kind == FD.TYPE_ENUM:
        named = field.enum_type.values_by_number.get(value)
        return go_string(named.name) if named is not None else str(value)
    if kind == FD.TYPE_STRING:
        return go_string(value)
    raise TypeError(f"no JSON mapping for field {field.full_name}")


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "<": "\\u003c", ">": "\\u003e"}
_GO_ESCAPES.update({"&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def go_string(text: str) -> str:
    """``text`` as Go's json.Marshal writes a string."""
    out = []
    for ch in text:
        escaped = _GO_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


# -- input -------------------------------------------------------------------------------------------------


def from_json(message_type: type[Message], body: bytes) -> Message:
    """The request in ``body`` (its first JSON value; what follows it is not read), as etcd's gateway decodes
    it; GoJsonError with jsonpb's text when it cannot."""
    message = message_type()
    if at_end(body, 0):
        return message
    node, _ = read_value(body, 0, DECODER_EOF)
    fill(message, node)
    return message


def read_messages(message_type: type[Message], body: bytes):
    """Each JSON value of a streaming request body, decoded in turn (a generator: a bad one raises when
    reached, after the ones before it were taken)."""
    pos = 0
    while not at_end(body, pos):
        node, pos = read_value(body, pos, DECODER_EOF)
        message = message_type()
        fill(message, node)
        yield message


def fill(message: Message, node: Node) -> None:
    """jsonpb's unmarshalMessage: ``node`` must be an object (or null)."""
    if node.kind == "null":
        return
    _expect(node, "object", "map[string]json.RawMessage")
    fields = {}
    for field in message.DESCRIPTOR.fields:
        fields.setdefault(field.name, field)
        fields.setdefault(field.json_name, field)
    given: dict[str, Node] = {}
    for key, value in node.value:
        given[key] = value  # a later duplicate replaces an earlier one, as in a Go map
    for field in message.DESCRIPTOR.fields:
        value = given.get(field.name)
        if value is None:
            value = given.get(field.json_name)
        if value is None or value.kind == "null":
            continue
        if field.is_repeated:
            _expect(value, "array", "[]json.RawMessage")
            target = getattr(message, field.name)
            for item in value.value:
                if field.type == FD.TYPE_MESSAGE:
                    fill(target.add(), item)
                else:
                    target.append(_scalar(field, item))
        elif field.type == FD.TYPE_MESSAGE:
            sub = getattr(message, field.name)
            sub.SetInParent()
            fill(sub, value)
        else:
            setattr(message, field.name, _scalar(field, value))


def _go_kind(node: Node) -> str:
    return {"string": "string", "number": "number", "bool": "bool", "array": "array", "object": "object"}[node.kind]


def _expect(node: Node, kind: str, go_type: str) -> None:
    if node.kind != kind:
        raise GoJsonError(f"json: cannot unmarshal {_go_kind(node)} into Go value of type {go_type}")


def _scalar(field: FD, node: Node):
    kind = field.type
    if kind in _INT_TYPES:
        go_type, low, high = _INT_TYPES[kind]
        raw = node.raw
        if len(raw) >= 2 and raw[:1] == b'"' and raw[-1:] == b'"':  # jsonpb's trimQuote: no unescaping
            node = unmarshal(raw[1:-1])
        return _integer(node, go_type, low, high)
    if kind == FD.TYPE_ENUM:
        if node.kind == "string" and node.raw[-1:] == b'"':
            named = field.enum_type.values_by_name.get(node.raw[1:-1].decode("utf-8", "replace"))
            if named is None:
                raise GoJsonError(
                    f"unknown value {go_string(node.raw.decode('utf-8', 'replace'))} for enum "
                    f"{field.enum_type.full_name}"
                )
            return named.number
        return _integer(node, "protoreflect.EnumNumber", -(2**31), 2**31 - 1)
    if kind == FD.TYPE_BOOL:
        _expect(node, "bool", "bool")
        return node.value
    if kind == FD.TYPE_STRING:
        _expect(node, "string", "string")
        return node.value
    if kind == FD.TYPE_BYTES:
        if node.kind == "array":  # encoding/json fills a []byte from an array of numbers too
            return bytes(_integer(item, "uint8", 0, 255) for item in node.value)
        _expect(node, "string", "[]uint8")
        return _std_base64(node.value)
    raise GoJsonError(f"no JSON mapping for field {field.full_name}")


def _integer(node: Node, go_type: str, low: int, high: int) -> int:
    if node.kind == "null":
        return 0
    _expect(node, "number", go_type)
    if _INTEGER.fullmatch(node.raw) is None or not low <= int(node.raw) <= high:
        raise GoJsonError(f"json: cannot unmarshal number {node.raw.decode()} into Go value of type {go_type}")
    return int(node.raw)


def _std_base64(text: str) -> bytes:
    """Go's base64.StdEncoding.DecodeString, as encoding/json uses it for []byte: the standard alphabet in
    quanta of four, "=" padding required, \\r and \\n skipped; a bad input fails with the offset Go names."""
    src = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    si = 0
    while True:
        quantum: list[int] = []
        while len(quantum) < 4:
            if si == len(src):
                if not quantum:
                    return bytes(out)
                raise GoJsonError(f"illegal base64 data at input byte {si - len(quantum)}")
            c = src[si]
            si += 1
            if c in b"\r\n":
                continue
            value = _ALPHABET.find(bytes([c]))
            if value >= 0:
                quantum.append(value)
                continue
            if c != ord("=") or len(quantum) < 2:
                raise GoJsonError(f"illegal base64 data at input byte {si - 1}")
            if len(quantum) == 2:  # a second "=" must follow
                si = _skip_newlines(src, si)
                if si == len(src):
                    raise GoJsonError(f"illegal base64 data at input byte {len(src)}")
                if src[si] != ord("="):
                    raise GoJsonError(f"illegal base64 data at input byte {si - 1}")
                si += 1
            si = _skip_newlines(src, si)
            if si < len(src):
                raise GoJsonError(f"illegal base64 data at input byte {si}")
            out += _decode_quantum(quantum)
            return bytes(out)
        out += _decode_quantum(quantum)


_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _skip_newlines(src: bytes, si: int) -> int:
    while si < len(src) and src[si] in b"\r\n":
        si += 1
    return si


def _decode_quantum(values: list[int]) -> bytes:
    bits = 0
    for value in values:
        bits = bits << 6 | value
    bits <<= 6 * (4 - len(values))
    return bits.to_bytes(3, "big")[: len(values) - 1]

"""The error text etcd's gogo-protobuf unmarshallers give for a malformed request (pure).

etcd 3.5 decodes requests with gogo-generated code; grpc-go reports its error as
"grpc: error unmarshalling request: <text>", and clients see that text. ``unmarshal_error`` walks
the wire bytes the way that generated code does (field by field, nested messages included) and
returns the same text, or None when the bytes are well formed to it.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

EOF_ = "unexpected EOF"
OVERFLOW = "proto: integer overflow"
NEGATIVE_LENGTH = "proto: negative length found during unmarshaling"
END_OF_GROUP = "proto: unexpected end of group"

_VARINT_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_BOOL,
    FieldDescriptor.TYPE_ENUM,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
}
_LENGTH_TYPES = {FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE}


class _Malformed(Exception):
    def __init__(self, text: str) -> None:
        self.text = text


def go_name(field_name: str) -> str:
    """The Go field name protoc-gen-gogo derives: each '_'-separated part with its first letter upper-cased."""
    return "".join(part[:1].upper() + part[1:] for part in field_name.split("_"))


def unmarshal_error(descriptor: Descriptor, data: bytes) -> str | None:
    """None also for bytes nested deeper than this walk can follow (gogo has no depth limit)."""
    try:
        _message(descriptor, data)
    except _Malformed as exc:
        return exc.text
    except RecursionError:
        return None
    return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if shift >= 64:
            raise _Malformed(OVERFLOW)
        if pos >= len(data):
            raise _Malformed(EOF_)
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7


def _length(data: bytes, pos: int) -> tuple[int, int]:
    length, pos = _varint(data, pos)
    if length >= 1 << 63:  # a Go int: negative
        raise _Malformed(NEGATIVE_LENGTH)
    end = pos + length
    if end > len(data):
        raise _Malformed(EOF_)
    return end, pos


def _message(descriptor: Descriptor, data: bytes) -> None:
    pos, end = 0, len(data)
    name = descriptor.name
    while pos < end:
        start = pos
        tag, pos = _varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 4:
            raise _Malformed(f"proto: {name}: wiretype end group for non-group")
        if number <= 0 or number >= 1 << 31:
            signed = number - (1 << 32) if number >= 1 << 31 else number
            raise _Malformed(f"proto: {name}: illegal tag {signed} (wire type {tag})")
        field = descriptor.fields_by_number.get(number)
        if field is None:
            pos = start + _skip(data[start:])
            continue
        pos = _field(field, wire_type, data, pos)


def _field(field: FieldDescriptor, wire_type: int, data: bytes, pos: int) -> int:
    wrong = f"proto: wrong wireType = {wire_type} for field {go_name(field.name)}"
    kind = field.type
    if kind in _VARINT_TYPES:
        if wire_type == 0:
            return _varint(data, pos)[1]
        if wire_type == 2 and field.is_repeated:  # packed
            end, pos = _length(data, pos)
            while pos < end:
                pos = _varint(data, pos)[1]
            return pos
        raise _Malformed(wrong)
    if kind in _LENGTH_TYPES:
        if wire_type != 2:
            raise _Malformed(wrong)
        end, pos = _length(data, pos)
        if kind == FieldDescriptor.TYPE_MESSAGE:
            _message(field.message_type, data[pos:end])
        return end
    size = (
        8 if kind in (FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_DOUBLE) else 4
    )
    if wire_type != (1 if size == 8 else 5):
        raise _Malformed(wrong)
    if pos + size > len(data):
        raise _Malformed(EOF_)
    return pos + size


def _skip(data: bytes) -> int:
    """Length of the unknown field at the start of ``data`` (gogo's skip function)."""
    pos, depth = 0, 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        wire_type = tag & 7
        if wire_type == 0:
            pos = _varint(data, pos)[1]
        elif wire_type == 1:
            pos += 8
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            if length >= 1 << 63:
                raise _Malformed(NEGATIVE_LENGTH)
            pos += length
        elif wire_type == 3:
            depth += 1
        elif wire_type == 4:
            if depth == 0:
                raise _Malformed(END_OF_GROUP)
            depth -= 1
        elif wire_type == 5:
            pos += 4
        else:
            raise _Malformed(f"proto: illegal wireType {wire_type}")
        if depth == 0:
            if pos > len(data):
                raise _Malformed(EOF_)
            return pos
    raise _Malformed(EOF_)

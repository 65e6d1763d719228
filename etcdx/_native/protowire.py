"""Protobuf wire-format primitives for the pure-Python codec twins (_native/*_py.py).

The compiled codecs spell the same rules in C through _protowire.pxd. Varints are base-128, least
significant group first, at most 10 bytes for 64 bits; a signed value is written as its 64-bit two's
complement (so a negative int32 or int64 takes 10 bytes), as protobuf does.
"""

from __future__ import annotations

U64_MASK = (1 << 64) - 1
# Wire types (the low 3 bits of a field key).
VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
MAX_GROUP_DEPTH = 100  # nested groups upb (protobuf's C core) accepts in a message


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message of the expected shape."""


def check_range(value: int, low: int, high: int, what: str) -> None:
    """Raises OverflowError unless low <= value <= high (the compiled codecs' C conversions do the same)."""
    if not low <= value <= high:
        raise OverflowError(f"{what} {value} out of range [{low}, {high}]")


def varint(value: int) -> bytes:
    """The varint of ``value`` taken as a 64-bit two's complement (0 <= value < 2**64, or negative)."""
    value &= U64_MASK
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``pos``; bits past the 64th are dropped.

    Raises WireError when the buffer ends inside the varint or it runs past 10 bytes.
    """
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & U64_MASK, pos
    raise WireError("varint longer than 10 bytes")


def read_key(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(field number, wire type, position after) of the field key at ``pos``; WireError for a field
    number 0 or a key over 32 bits."""
    key, pos = read_varint(buf, pos)
    if key >> 3 == 0 or key > 0xFFFFFFFF:
        raise WireError(f"invalid field key {key}")
    return key >> 3, key & 7, pos


def skip_field(buf: bytes, pos: int, wire_type: int, number: int) -> int:
    """The position after the value of field ``number`` (of ``wire_type``) that starts at ``pos``.

    A group is skipped to its matching end (nested at most MAX_GROUP_DEPTH deep; inside a group, as in
    upb, field number 0 passes); an end group with no start, an unknown wire type or a value running
    past the buffer raise WireError.
    """
    groups = []
    while True:
        if wire_type == VARINT:
            pos = read_varint(buf, pos)[1]
        elif wire_type == FIXED64:
            pos += 8
        elif wire_type == FIXED32:
            pos += 4
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos)
            pos += length
        elif wire_type == START_GROUP:
            if len(groups) == MAX_GROUP_DEPTH:
                raise WireError("groups nested too deep")
            groups.append(number)
        elif wire_type == END_GROUP and groups and groups[-1] == number:
            groups.pop()
        else:
            raise WireError(f"unexpected wire type {wire_type} for field {number}")
        if pos > len(buf):
            raise WireError("truncated field")
        if not groups:
            return pos
        key, pos = read_varint(buf, pos)
        if key > 0xFFFFFFFF:
            raise WireError(f"invalid field key {key}")
        number, wire_type = key >> 3, key & 7

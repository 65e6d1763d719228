"""The raft log entry codec (the pure-Python twin of _entrycodec.pyx).

Bytes are those of etcdxpb.Entry (proto/etcdxpb/raft.proto) as protobuf serializes it:

    field 1 term   uint64     varint, key 0x08
    field 2 index  uint64     varint, key 0x10
    field 3 type   EntryType  varint of the int32 (a negative one as 10 bytes), key 0x18
    field 4 data   bytes      length-delimited, key 0x22

in field-number order, each omitted when it holds its default (0 or empty), so ``encode`` gives the
bytes of ``Entry(...).SerializeToString()``. ``decode`` reads what any proto3 encoder produces: fields
in any order, the last occurrence of a field wins, unknown fields (groups too) are skipped and
their values lost, a field with an unexpected wire type counts as unknown. What protobuf refuses raises
ValueError (protowire.WireError): truncated input, a field number 0, varints over 10 bytes, an end group
without its start, groups nested over 100 deep, wire types 6 and 7.
"""

from __future__ import annotations

from etcdx._native.protowire import LEN, VARINT, WireError, check_range, read_key, read_varint, skip_field, varint

U64_MAX = (1 << 64) - 1
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def encode(term: int, index: int, entry_type: int, data: bytes) -> bytes:
    """The serialized Entry; raises OverflowError when a number is out of its field's range."""
    check_range(term, 0, U64_MAX, "term")
    check_range(index, 0, U64_MAX, "index")
    check_range(entry_type, I32_MIN, I32_MAX, "type")
    parts = []
    if term:
        parts += (b"\x08", varint(term))
    if index:
        parts += (b"\x10", varint(index))
    if entry_type:
        parts += (b"\x18", varint(entry_type))
    if data:
        parts += (b"\x22", varint(len(data)), bytes(data))
    return b"".join(parts)


def decode(buf: bytes) -> tuple[int, int, int, bytes]:
    """(term, index, type, data) of a serialized Entry."""
    term = index = entry_type = 0
    data = b""
    pos, end = 0, len(buf)
    while pos < end:
        field, wire_type, pos = read_key(buf, pos)
        if wire_type == VARINT and field in (1, 2, 3):
            value, pos = read_varint(buf, pos)
            if field == 1:
                term = value
            elif field == 2:
                index = value
            else:
                entry_type = (value & 0xFFFFFFFF) - ((value & 0x80000000) << 1)  # int32 from the low 32 bits
        elif wire_type == LEN and field == 4:
            length, pos = read_varint(buf, pos)
            if pos + length > end:
                raise WireError("truncated data")
            data = bytes(buf[pos : pos + length])
            pos += length
        else:
            pos = skip_field(buf, pos, wire_type, field)
    return term, index, entry_type, data

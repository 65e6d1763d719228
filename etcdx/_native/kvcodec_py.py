"""A stored KeyValue's encoding (the pure-Python twin of _kvcodec.pyx).

mvccpb.KeyValue as protobuf serializes it, fields in field-number order, each only when non-zero or non-empty:

    field 1 key              bytes   length-delimited, key 0x0a
    field 2 create_revision  int64   varint (a negative one as 10 bytes), key 0x10
    field 3 mod_revision     int64   varint, key 0x18
    field 4 version          int64   varint, key 0x20
    field 5 value            bytes   length-delimited, key 0x2a
    field 6 lease            int64   varint, key 0x30

so ``encode_key_value(...) == KeyValue(key=..., ...).SerializeToString()``: the bytes the backend stores for a
revision, written without building a KeyValue.
"""

from __future__ import annotations

from etcdx._native.protowire import check_range, varint

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


def encode_key_value(
    key: bytes, create_revision: int, mod_revision: int, version: int, value: bytes, lease: int
) -> bytes:
    """The serialized KeyValue with these fields."""
    parts = []
    if key:
        parts += (b"\x0a", varint(len(key)), key)
    for tag, number, name in ((b"\x10", create_revision, "create_revision"), (b"\x18", mod_revision, "mod_revision"),
                              (b"\x20", version, "version")):  # fmt: skip
        check_range(number, I64_MIN, I64_MAX, name)
        if number:
            parts += (tag, varint(number))
    if value:
        parts += (b"\x2a", varint(len(value)), value)
    check_range(lease, I64_MIN, I64_MAX, "lease")
    if lease:
        parts += (b"\x30", varint(lease))
    return b"".join(parts)

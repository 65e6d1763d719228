"""RangeResponse encoding from stored KeyValue bytes (the pure-Python twin of _rangecodec.pyx).

etcdserverpb.RangeResponse as protobuf serializes it, fields in field-number order:

    field 1 header  ResponseHeader    length-delimited, key 0x0a, always present
    field 2 kvs     repeated KeyValue length-delimited, key 0x12, one per KeyValue, in list order
    field 3 more    bool              varint 1, key 0x18, only when true
    field 4 count   int64             varint (a negative one as 10 bytes), key 0x20, only when non-zero

``encode_header`` writes the ResponseHeader that goes in field 1, fields in field-number order, each only
when non-zero: 1 cluster_id (uint64, key 0x08), 2 member_id (uint64, key 0x10), 3 revision (int64, key 0x18,
a negative one as 10 bytes), 4 raft_term (uint64, key 0x20): ``ResponseHeader(...).SerializeToString()``.

A KeyValue is copied as it is given, so the result equals ``RangeResponse(header=..., kvs=[...], more=...,
count=...).SerializeToString()`` whenever each given KeyValue is in protobuf's own serialization (as
the LMDB backend stores them: ``KeyValue.SerializeToString()``); nothing is parsed.
"""

from __future__ import annotations

from collections.abc import Sequence

from etcdx._native.protowire import check_range, varint

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
U64_MAX = (1 << 64) - 1


def encode_header(cluster_id: int, member_id: int, revision: int, raft_term: int) -> bytes:
    """The serialized ResponseHeader with these fields."""
    check_range(cluster_id, 0, U64_MAX, "cluster_id")
    check_range(member_id, 0, U64_MAX, "member_id")
    check_range(revision, I64_MIN, I64_MAX, "revision")
    check_range(raft_term, 0, U64_MAX, "raft_term")
    parts = []
    for key, value in ((b"\x08", cluster_id), (b"\x10", member_id), (b"\x18", revision), (b"\x20", raft_term)):
        if value:
            parts += (key, varint(value))
    return b"".join(parts)


def encode(header: bytes, kvs: Sequence[bytes], more: bool, count: int) -> bytes:
    """The serialized RangeResponse; ``header`` is a serialized ResponseHeader, ``kvs`` serialized KeyValues."""
    check_range(count, I64_MIN, I64_MAX, "count")
    parts = [b"\x0a", varint(len(header)), header]
    for kv in kvs:
        parts += (b"\x12", varint(len(kv)), kv)
    if more:
        parts.append(b"\x18\x01")
    if count:
        parts += (b"\x20", varint(count))
    return b"".join(parts)

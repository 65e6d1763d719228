"""etcd 3.5's backend buckets read as etcdx's tables (mvcc/schema.py). Pure.

What carries over from an etcd snapshot:
- "key": copied row for row (etcdx stores etcd's revision keys and mvccpb.KeyValue bytes unchanged);
- "lease": lease id (int64 big-endian) -> leasepb.Lease; its TTL field becomes the lease table's TTL;
- "meta": scheduledCompactRev and finishedCompactRev (etcd's 17-byte revision keys; the main revision is
  kept), so the compacted revision survives.
What does not: members (a restore writes the new membership), the consistent index and term (a restore
sets them), alarms (they name members of the old cluster), auth and the cluster version (etcdx keeps auth
in its own tables: not carried over yet).
"""

from __future__ import annotations

import struct

from etcdx.mvcc.schema import KEY_DB, LEASE_DB, META_DB, META_FINISHED_COMPACT, META_SCHEDULED_COMPACT

_U64 = struct.Struct(">Q")
_LEASE_TTL_FIELD = 2  # leasepb.Lease: ID = 1, TTL = 2, RemainingTTL = 3 (all int64 varints)


def lease_ttl(lease: bytes) -> int:
    """The TTL of a serialized leasepb.Lease (0 if absent); ValueError for bytes that are not one."""
    pos, ttl = 0, 0
    while pos < len(lease):
        tag, pos = _varint(lease, pos)
        if tag & 7 != 0:
            raise ValueError("leasepb.Lease: unexpected wire type")
        value, pos = _varint(lease, pos)
        if tag >> 3 == _LEASE_TTL_FIELD:
            ttl = value - (1 << 64) if value >= 1 << 63 else value
    return ttl


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("leasepb.Lease: truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _meta_int(value: int) -> bytes:
    """rows.put_meta_int's encoding."""
    return _U64.pack(value + (1 << 63))


def etcd_tables(buckets: dict[bytes, list[tuple[bytes, bytes]]]) -> dict[bytes, list[tuple[bytes, bytes]]]:
    """The rows of etcdx's key, lease and meta tables (each in key order) that etcd's ``buckets`` (name ->
    rows, as BoltFile.items reads them) hold. ValueError for a lease row that is not a leasepb.Lease."""
    leases = sorted((k, _U64.pack(lease_ttl(v))) for k, v in buckets.get(b"lease", []) if len(k) == 8)
    etcd_meta = dict(buckets.get(b"meta", []))
    meta = []
    for name in (META_FINISHED_COMPACT, META_SCHEDULED_COMPACT):
        raw = etcd_meta.get(name)
        if raw is not None and len(raw) >= 8:
            meta.append((name, _meta_int(_U64.unpack_from(raw)[0])))
    return {KEY_DB: list(buckets.get(b"key", [])), LEASE_DB: leases, META_DB: sorted(meta)}

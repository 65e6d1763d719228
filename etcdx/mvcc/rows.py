"""Encodings of the rows of the meta, lease, alarm and auth tables, read and written through a TableView or
TableWriter (tables.py). Pure. The encodings are fixed by the files already on disk.

- meta: name -> int64 as 8 big-endian bytes of ``value + 2**63`` (so byte order is number order), or the
  bytes as they are for a meta row that holds a blob (the v2 store's state);
- lease: int64 id (signed big-endian: clients may choose negative ids) -> uint64 granted TTL, then the uint64
  remaining TTL of a persisted lease checkpoint, if there is one;
- alarm: uint64 member id + uint32 alarm type -> b"";
- members: uint64 member id -> serialized etcdserverpb.Member (kept as bytes here: mvcc does not decode it).
- auth: the auth store's own records (etcdx.auth.records), stored as they are.
"""

from __future__ import annotations

import struct

from etcdx.mvcc.schema import ALARM_DB, AUTH_DB, LEASE_DB, MEMBERS_DB, META_DB
from etcdx.mvcc.tables import TableView, TableWriter

_U64 = struct.Struct(">Q")
_LEASE_ID = struct.Struct(">q")
_ALARM = struct.Struct(">QI")


def get_meta_int(view: TableView, name: bytes, default: int) -> int:
    raw = view.get(META_DB, name)
    return default if raw is None else _U64.unpack(raw)[0] - (1 << 63)


def put_meta_int(txn: TableWriter, name: bytes, value: int) -> None:
    txn.put(META_DB, name, _U64.pack(value + (1 << 63)))


def get_meta_bytes(view: TableView, name: bytes) -> bytes | None:
    return view.get(META_DB, name)


def put_meta_bytes(txn: TableWriter, name: bytes, value: bytes) -> None:
    txn.put(META_DB, name, value)


def put_lease(txn: TableWriter, lease_id: int, ttl: int, remaining_ttl: int = 0) -> None:
    """A positive ``remaining_ttl`` (a persisted lease checkpoint) follows the TTL as a second uint64."""
    value = _U64.pack(ttl) + (_U64.pack(remaining_ttl) if remaining_ttl > 0 else b"")
    txn.put(LEASE_DB, _LEASE_ID.pack(lease_id), value)


def delete_lease(txn: TableWriter, lease_id: int) -> None:
    txn.delete(LEASE_DB, _LEASE_ID.pack(lease_id))


def leases(view: TableView) -> list[tuple[int, int]]:
    """Every stored (lease id, granted TTL)."""
    return [(lease_id, ttl) for lease_id, ttl, _ in leases_with_remaining(view)]


def leases_with_remaining(view: TableView) -> list[tuple[int, int, int]]:
    """Every stored (lease id, granted TTL, persisted remaining TTL or 0)."""
    found = []
    for key, value in view.scan(LEASE_DB):
        remaining = _U64.unpack_from(value, 8)[0] if len(value) >= 16 else 0
        found.append((_LEASE_ID.unpack(key)[0], _U64.unpack_from(value)[0], remaining))
    return found


def put_alarm(txn: TableWriter, member_id: int, alarm: int) -> None:
    txn.put(ALARM_DB, _ALARM.pack(member_id, alarm), b"")


def delete_alarm(txn: TableWriter, member_id: int, alarm: int) -> None:
    txn.delete(ALARM_DB, _ALARM.pack(member_id, alarm))


def alarms(view: TableView) -> list[tuple[int, int]]:
    """Every stored active alarm as (member id, alarm type)."""
    return [_ALARM.unpack(k) for k in view.keys(ALARM_DB)]


def put_member(txn: TableWriter, member_id: int, member: bytes) -> None:
    txn.put(MEMBERS_DB, _U64.pack(member_id), member)


def delete_member(txn: TableWriter, member_id: int) -> None:
    txn.delete(MEMBERS_DB, _U64.pack(member_id))


def members(view: TableView) -> list[tuple[int, bytes]]:
    """Every stored (member id, serialized etcdserverpb.Member), by id."""
    return [(_U64.unpack(k)[0], v) for k, v in view.scan(MEMBERS_DB)]


def auth_records(view: TableView) -> list[tuple[bytes, bytes]]:
    """Every stored auth record, in key order (what ``AuthStore.load`` takes)."""
    return list(view.scan(AUTH_DB))


def write_auth(txn: TableWriter, records: list[tuple[bytes, bytes | None]]) -> None:
    """Writes what an auth store mutation returned: a None value deletes the key."""
    for key, value in records:
        if value is None:
            txn.delete(AUTH_DB, key)
        else:
            txn.put(AUTH_DB, key, value)

"""How the auth store lies in the backend's "auth" table: one record per fact.

Keys and values (all bytes):
  b"enabled"          -> b"\\x01" or b"\\x00"
  b"revision"         -> the auth revision, 8 bytes big-endian
  b"user/" + name     -> authpb.User, serialised (name, bcrypt hash, sorted roles, options)
  b"role/" + name     -> authpb.Role, serialised (name, permissions)

A write is ``(key, value)``; ``value is None`` deletes the key. The values are etcd's own protobuf
messages, so a user or role record is the same bytes etcd keeps in its authUsers / authRoles buckets.
"""

from __future__ import annotations

from etcdx.pb.authpb import auth_pb2

Record = tuple[bytes, bytes | None]

ENABLED_KEY = b"enabled"
REVISION_KEY = b"revision"
USER_PREFIX = b"user/"
ROLE_PREFIX = b"role/"


def enabled_record(enabled: bool) -> Record:
    return (ENABLED_KEY, b"\x01" if enabled else b"\x00")


def revision_record(revision: int) -> Record:
    return (REVISION_KEY, revision.to_bytes(8, "big"))


def user_record(user: auth_pb2.User) -> Record:
    return (USER_PREFIX + bytes(user.name), user.SerializeToString(deterministic=True))


def user_delete_record(name: str) -> Record:
    return (USER_PREFIX + name.encode(), None)


def role_record(role: auth_pb2.Role) -> Record:
    return (ROLE_PREFIX + bytes(role.name), role.SerializeToString(deterministic=True))


def role_delete_record(name: str) -> Record:
    return (ROLE_PREFIX + name.encode(), None)


def decode_revision(value: bytes) -> int:
    if len(value) != 8:
        raise ValueError(f"auth revision record has {len(value)} bytes, want 8")
    return int.from_bytes(value, "big")


def decode_enabled(value: bytes) -> bool:
    if value not in (b"\x00", b"\x01"):
        raise ValueError(f"auth enabled record holds {value!r}")
    return value == b"\x01"

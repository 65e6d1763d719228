"""Builders shared by the auth core tests: a store set up through its own apply methods."""

from __future__ import annotations

import random

from etcdx.auth import AuthInfo, AuthStore
from etcdx.auth.passwords import hash_password
from etcdx.auth.simple_token import SimpleTokens
from etcdx.pb.authpb import auth_pb2

READ, WRITE, READWRITE = auth_pb2.Permission.READ, auth_pb2.Permission.WRITE, auth_pb2.Permission.READWRITE
RNG = random.Random(7)


def perm(kind: int, key: bytes, range_end: bytes = b"") -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=kind, key=key, range_end=range_end)


def hashed(password: str) -> bytes:
    return hash_password(password, 4, RNG)


def store_with_root(tokens=None, enable: bool = True) -> AuthStore:
    store = AuthStore(tokens if tokens is not None else SimpleTokens(300))
    store.user_add("root", hashed("rootpw"), no_password=False)
    store.user_grant_role("root", "root")
    if enable:
        store.auth_enable()
    return store


def add_user(store: AuthStore, name: str, *perms: auth_pb2.Permission, password: str = "pw") -> AuthInfo:
    """A user holding one role named after it with ``perms``; returns its AuthInfo at the current revision."""
    store.user_add(name, hashed(password), no_password=False)
    store.role_add(name + "-role")
    for p in perms:
        store.role_grant_permission(name + "-role", p)
    store.user_grant_role(name, name + "-role")
    return store.auth_info_for(name)


def apply_records(table: dict[bytes, bytes], writes) -> dict[bytes, bytes]:
    """``table`` (a backend's "auth" table) after writing ``writes`` (value None deletes the key)."""
    for key, value in writes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table

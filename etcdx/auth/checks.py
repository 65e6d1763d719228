"""Key permission checks for client requests, run in apply against the auth revision the request carries.

What each request needs (``info`` is the AuthInfo stamped on the proposal):
- Range: read on [key, range_end).
- Put: write on key; with prev_kv, read on key; with a lease, write on every key already
  attached to that lease (attaching joins the key to their fate).
- DeleteRange: write on [key, range_end); with prev_kv, read on it too.
- Txn: read on every compare's key range, and every op of success AND failure checked as above,
  including the ops of txns nested in txns at any depth (CVE-2026-33343). The walk is iterative,
  so a deeply nested txn costs a refusal, not the member's stack.
- Watch create: read on the whole watched range; range_end b"\\x00" (from key, WithFromKey /
  WithPrefix of "") is open-ended and needs read to the end of the keyspace (GHSA-xg4h-6gfc-h4m8).
- LeaseRevoke / LeaseKeepAlive: an authenticated user with write on every key attached to the lease.
- LeaseTimeToLive: an authenticated user; with keys=true, read on every attached key.
The caller supplies the keys attached to a lease (``lease_keys``), read from the lessor at apply.

Every check raises the EtcdError etcd sends (permission denied, user name is empty, revision of auth
store is old) and returns None when allowed; all pass while auth is disabled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from etcdx.auth.rangeperms import key_interval
from etcdx.auth.store import AuthStore
from etcdx.auth.tokens import AuthInfo
from etcdx.pb.etcdserverpb import rpc_pb2

LeaseKeys = Callable[[int], Iterable[bytes]]


def check_range(store: AuthStore, info: AuthInfo | None, req: rpc_pb2.RangeRequest) -> None:
    store.check_read(info, key_interval(req.key, req.range_end))


def check_put(store: AuthStore, info: AuthInfo | None, req: rpc_pb2.PutRequest, lease_keys: LeaseKeys) -> None:
    point = key_interval(req.key, b"")
    store.check_write(info, point)
    if req.prev_kv:
        store.check_read(info, point)
    if req.lease:
        for key in lease_keys(req.lease):
            store.check_write(info, key_interval(key, b""))


def check_delete_range(store: AuthStore, info: AuthInfo | None, req: rpc_pb2.DeleteRangeRequest) -> None:
    interval = key_interval(req.key, req.range_end)
    store.check_write(info, interval)
    if req.prev_kv:
        store.check_read(info, interval)


def check_txn(store: AuthStore, info: AuthInfo | None, req: rpc_pb2.TxnRequest, lease_keys: LeaseKeys) -> None:
    """Every compare and every op of both branches, of this txn and of every txn nested in it."""
    if not store.enabled:
        return
    store.check_authenticated(info)
    pending = [req]
    while pending:
        txn = pending.pop()
        for cmp in txn.compare:
            store.check_read(info, key_interval(cmp.key, cmp.range_end))
        for op in (*txn.success, *txn.failure):
            kind = op.WhichOneof("request")
            if kind == "request_range":
                check_range(store, info, op.request_range)
            elif kind == "request_put":
                check_put(store, info, op.request_put, lease_keys)
            elif kind == "request_delete_range":
                check_delete_range(store, info, op.request_delete_range)
            elif kind == "request_txn":
                pending.append(op.request_txn)


def check_watch(store: AuthStore, info: AuthInfo | None, key: bytes, range_end: bytes) -> None:
    """A watch on (key, range_end) exactly as the client sent them (before any normalisation)."""
    store.check_read(info, key_interval(key, range_end))


def check_lease_revoke(store: AuthStore, info: AuthInfo | None, attached: Iterable[bytes]) -> None:
    store.check_authenticated(info)
    for key in attached:
        store.check_write(info, key_interval(key, b""))


check_lease_keepalive = check_lease_revoke


def check_lease_time_to_live(
    store: AuthStore, info: AuthInfo | None, attached: Iterable[bytes], *, with_keys: bool
) -> None:
    store.check_authenticated(info)
    if with_keys:
        for key in attached:
            store.check_read(info, key_interval(key, b""))

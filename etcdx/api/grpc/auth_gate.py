"""Who a gRPC call acts as, and the per-method gate every call passes before its handler runs.

``who(server, ctx)``: while auth is enabled, the user of the call's "token" metadata (or "authorization",
as etcd's gateway sends it), else the verified client certificate's CN, else nobody (None); a token the
provider does not know is refused with "invalid auth token". A token wins over a certificate.

``guard(server, path, method)`` wraps one route: it resolves ``who``, applies ``policy.METHODS[path]``
(OPEN, AUTHENTICATED, ADMIN; KEYS, SELF_OR_ADMIN and HOLDER_OR_ADMIN are checked by the handler, which knows
the request), then runs the handler inside ``caller.acting_as(info)``, so every proposal the call makes
carries that user and auth revision and is checked again in apply. Maintenance methods answer refusals as
etcd's Maintenance service does (``policy.unmapped``).

Handlers check what they serve without the log (ranges, read-only txns, watch creation, lease TTL and
keep-alive, the recipes' reads) with ``check(...)`` helpers below, against ``caller.current()``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from etcdx import errors
from etcdx.auth import checks, policy
from etcdx.auth.policy import Access
from etcdx.auth.rangeperms import key_interval
from etcdx.auth.tokens import AuthInfo
from etcdx.net.grpc_server import (
    BidiStreamMethod,
    Method,
    RpcContext,
    Send,
    ServerStreamMethod,
    UnaryMethod,
)
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.server import caller
from etcdx.server.apply import key_check_errors
from etcdx.server.server import EtcdServer


def who(server: EtcdServer, ctx: RpcContext) -> AuthInfo | None:
    """The user ``ctx`` authenticates as (None: auth is off, or the call names nobody)."""
    auth = server.auth
    if not auth.enabled:
        return None
    token = ctx.metadata.get("token") or ctx.metadata.get("authorization")
    if token:
        return server.tokens.info(token, time.time(), auth.revision)
    if ctx.peer_common_name:
        return auth.auth_info_for(ctx.peer_common_name)
    return None


def check_read(server: EtcdServer, key: bytes, range_end: bytes = b"") -> None:
    """The calling user may read [key, range_end) (a single key when range_end is empty)."""
    if not server.auth.enabled:
        return  # nothing to check (every read comes here: the common case costs one attribute)
    with key_check_errors():
        server.auth.check_read(caller.current(), key_interval(key, range_end))


def check_read_txn(server: EtcdServer, request: rpc_pb2.TxnRequest) -> None:
    """The calling user may read every compare and range of a read-only txn (at any depth)."""
    with key_check_errors():
        checks.check_txn(server.auth, caller.current(), request, lambda _: ())


def check_lease_keys(server: EtcdServer, lease_id: int, *, time_to_live: bool, with_keys: bool = False) -> None:
    """LeaseTimeToLive (read on the attached keys when ``with_keys``) or LeaseKeepAlive (write on them)."""
    lease = server.lessor.leases.get(lease_id)
    attached = sorted(lease.keys) if lease is not None else []
    with key_check_errors():
        if time_to_live:
            checks.check_lease_time_to_live(server.auth, caller.current(), attached, with_keys=with_keys)
        else:
            checks.check_lease_keepalive(server.auth, caller.current(), attached)


def _access(path: str, data: bytes) -> Access:
    access = policy.METHODS.get(path, Access.KEYS)
    if path == "/etcdserverpb.Maintenance/Alarm":
        request = rpc_pb2.AlarmRequest()
        try:
            request.ParseFromString(data)
        except Exception:  # the handler refuses it with the codec's error
            return access
        access = policy.alarm_access(request.action)
    return access


def _check_access(server: EtcdServer, access: Access, info: AuthInfo | None) -> None:
    if access is Access.AUTHENTICATED:
        server.auth.check_authenticated(info)
    elif access is Access.ADMIN:
        server.auth.check_admin(info)


def admit(server: EtcdServer, path: str, ctx: RpcContext, data: bytes) -> AuthInfo | None:
    """The call's user, once the method's gate let it in; raises the refusal etcd sends."""
    if not server.auth.enabled:
        return None
    access = _access(path, data)
    if access is Access.OPEN:
        return None
    try:
        info = who(server, ctx)
        _check_access(server, access, info)
    except errors.EtcdError as exc:
        if path.startswith(policy.MAINTENANCE_PREFIX):
            raise policy.unmapped(exc) from None
        raise
    return info


def guard(server: EtcdServer, path: str, method: Method) -> Method:
    """A task-running ``method`` (unary, server stream, bidi) behind the auth gate of ``path``; the synchronous
    unary kinds get both gates in one wrapper (gates.py)."""
    if isinstance(method, UnaryMethod):
        handler = method.handler

        async def unary(data: bytes, ctx: RpcContext) -> bytes:
            with caller.acting_as(admit(server, path, ctx, data)):
                return await handler(data, ctx)

        return UnaryMethod(unary)
    if isinstance(method, ServerStreamMethod):
        stream_handler = method.handler

        async def server_stream(data: bytes, ctx: RpcContext, send: Send) -> None:
            with caller.acting_as(admit(server, path, ctx, data)):
                await stream_handler(data, ctx, send)

        return ServerStreamMethod(server_stream)
    bidi_handler = method.handler

    async def bidi(requests: AsyncIterator[bytes], ctx: RpcContext, send: Send) -> None:
        with caller.acting_as(admit(server, path, ctx, b"")):
            await bidi_handler(requests, ctx, send)

    assert isinstance(method, BidiStreamMethod)
    return BidiStreamMethod(bidi)

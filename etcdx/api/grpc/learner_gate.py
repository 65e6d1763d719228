"""etcd's learner gate: while the membership this member has applied lists it as a learner, it refuses every
client call with Unavailable "etcdserver: rpc not supported for learner", except Maintenance Status, a
serializable Range and the Maintenance Snapshot stream (etcd 3.5.1's unary and stream interceptors). The refusal
comes before "require leader" and before auth look at the call; the /v3 JSON gateway resolves the same gated
methods, so it refuses alike. A member the applied membership does not list yet is no learner.

A voter pays one attribute test (``server.is_learner``) per call; the calls served on a learner pay nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from etcdx import errors
from etcdx.net.grpc_server import (
    BidiStreamMethod,
    Method,
    RpcContext,
    Send,
    ServerStreamMethod,
    UnaryMethod,
)
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.server.server import EtcdServer

SERVED_ON_LEARNER = frozenset({"/etcdserverpb.Maintenance/Status", "/etcdserverpb.Maintenance/Snapshot"})
"""The methods a learner serves whatever the request."""
RANGE = "/etcdserverpb.KV/Range"
"""Served on a learner when serializable (a learner has no quorum to confirm a linearizable read with)."""


def _refuse(data: bytes) -> None:
    raise errors.ERR_NOT_SUPPORTED_FOR_LEARNER


def _refuse_linearizable_range(data: bytes) -> None:
    if not rpc_pb2.RangeRequest.FromString(data).serializable:
        raise errors.ERR_NOT_SUPPORTED_FOR_LEARNER


def check_for(path: str) -> Callable[[bytes], None] | None:
    """What a learner does with a call to ``path`` given its request bytes: raise etcd's refusal, or return to
    let it pass. None for the methods it always serves (they need no check)."""
    if path in SERVED_ON_LEARNER:
        return None
    return _refuse_linearizable_range if path == RANGE else _refuse


def guard(server: EtcdServer, path: str, method: Method) -> Method:
    """A task-running ``method`` (unary, server stream, bidi) behind the gate; the synchronous unary kinds get
    the check inside their one wrapper (gates.py)."""
    check = check_for(path)
    if check is None:
        return method
    if isinstance(method, UnaryMethod):
        unary_handler = method.handler

        async def unary(data: bytes, ctx: RpcContext) -> bytes:
            if server.is_learner:
                check(data)
            return await unary_handler(data, ctx)

        return UnaryMethod(unary)
    if isinstance(method, ServerStreamMethod):
        stream_handler = method.handler

        async def server_stream(data: bytes, ctx: RpcContext, send: Send) -> None:
            if server.is_learner:
                check(data)
            await stream_handler(data, ctx, send)

        return ServerStreamMethod(server_stream)
    assert isinstance(method, BidiStreamMethod)
    bidi_handler = method.handler

    async def bidi(requests: AsyncIterator[bytes], ctx: RpcContext, send: Send) -> None:
        if server.is_learner:
            raise errors.ERR_NOT_SUPPORTED_FOR_LEARNER
        await bidi_handler(requests, ctx, send)

    return BidiStreamMethod(bidi)

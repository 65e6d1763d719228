"""etcd's "require leader" gate: a call whose ``hasleader`` metadata is ``true`` (clientv3's WithRequireLeader)
is refused with "etcdserver: no leader" while this member knows no leader, before anything else looks at it.
A stream that carried it and is already open is ended with that error once the member has gone
MAX_NO_LEADER_CHECKS election timeouts in a row without a leader (etcd's monitorLeader: reconnecting a stream
costs more than refusing a new call, so open streams get that grace). Calls without the metadata pass as
they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from etcdx import errors
from etcdx.net.grpc_server import (
    BidiStreamMethod,
    Method,
    RpcContext,
    Send,
    ServerStreamMethod,
    UnaryMethod,
)
from etcdx.server.server import EtcdServer

MAX_NO_LEADER_CHECKS = 3


def _requires_leader(ctx: RpcContext) -> bool:
    return ctx.metadata.get("hasleader") == "true"


def check(server: EtcdServer, ctx: RpcContext) -> None:
    """Refuses a call that requires a leader while this member knows none."""
    if not server.leader_id and ctx.metadata.get("hasleader") == "true":
        raise errors.ERR_NO_LEADER


async def _while_leader(server: EtcdServer, ctx: RpcContext, run) -> None:
    """Runs ``run()``; for a call that requires a leader, ends it with "no leader" after the grace above."""
    if not _requires_leader(ctx):
        await run()
        return
    interval = server.settings.election_timeout_ms / 1000
    lost = False

    async def watch(scope: trio.CancelScope) -> None:
        nonlocal lost
        without = 0
        while True:
            await trio.sleep(interval)
            without = 0 if server.leader_id else without + 1
            if without >= MAX_NO_LEADER_CHECKS:
                lost = True
                scope.cancel()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, nursery.cancel_scope)
        await run()
        nursery.cancel_scope.cancel()
    if lost:
        raise errors.ERR_NO_LEADER


def require_leader(server: EtcdServer, method: Method) -> Method:
    """A task-running ``method`` (unary, server stream, bidi) behind the gate (see the module docstring); the
    synchronous unary kinds get both gates in one wrapper (gates.py)."""
    if isinstance(method, UnaryMethod):
        unary_handler = method.handler

        async def unary(data: bytes, ctx: RpcContext) -> bytes:
            check(server, ctx)
            return await unary_handler(data, ctx)

        return UnaryMethod(unary)
    if isinstance(method, ServerStreamMethod):
        stream_handler = method.handler

        async def server_stream(data: bytes, ctx: RpcContext, send: Send) -> None:
            check(server, ctx)
            await _while_leader(server, ctx, lambda: stream_handler(data, ctx, send))

        return ServerStreamMethod(server_stream)
    assert isinstance(method, BidiStreamMethod)
    bidi_handler = method.handler

    async def bidi(requests: AsyncIterator[bytes], ctx: RpcContext, send: Send) -> None:
        check(server, ctx)
        await _while_leader(server, ctx, lambda: bidi_handler(requests, ctx, send))

    return BidiStreamMethod(bidi)

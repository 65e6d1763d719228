"""Plain forwarding of gRPC calls to the upstream cluster, bytes in and bytes out (no decoding).

The client's call metadata (its auth token, "hasleader", ...) goes upstream with each call; transport headers
do not. Upstream errors reach the client with the upstream's code and text; a call the client abandons
(cancelled, deadline) resets its upstream stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from etcdx.net.grpc_server import FORWARDED_CN, BidiStreamMethod, RpcContext, Send, ServerStreamMethod, UnaryMethod
from etcdx.proxy.upstream import Upstream

# Metadata that belongs to the client's own connection, never forwarded.
_LOCAL = frozenset(
    ["te", "content-type", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "user-agent", FORWARDED_CN]
)


_CREDENTIALS = ("authorization", "token")


def credentials(metadata: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The metadata that says who the caller is (its auth token). What the proxy shares between callers (an
    upstream watch, a cached Range response) it shares only between callers that present the same."""
    return tuple((name, metadata[name]) for name in _CREDENTIALS if name in metadata)


def upstream_metadata(ctx: RpcContext) -> dict[str, str]:
    """The call's metadata for the upstream, with the client certificate's verified CN (if any) as FORWARDED_CN:
    a member honours it only from its read workers (net/grpc_server.py), and a client's own is never passed on."""
    metadata = {name: value for name, value in ctx.metadata.items() if name not in _LOCAL and not name.startswith(":")}
    if ctx.peer_common_name:
        metadata[FORWARDED_CN] = ctx.peer_common_name
    return metadata


def unary(upstream: Upstream, path: str) -> UnaryMethod:
    async def handler(data: bytes, ctx: RpcContext) -> bytes:
        return await upstream.unary(path, data, upstream_metadata(ctx))

    return UnaryMethod(handler)


def server_stream(upstream: Upstream, path: str) -> ServerStreamMethod:
    async def handler(data: bytes, ctx: RpcContext, send: Send) -> None:
        async with upstream.open_call(path, upstream_metadata(ctx)) as call:
            await call.send(data, end=True)
            async for message in call.responses():
                await send(message)

    return ServerStreamMethod(handler)


def bidi_stream(upstream: Upstream, path: str) -> BidiStreamMethod:
    """Both directions relayed as they come; the call ends when the upstream ends it (its status is the
    client's) or when the client half-closes and the upstream has finished answering."""

    async def handler(messages: AsyncIterator[bytes], ctx: RpcContext, send: Send) -> None:
        async with upstream.open_call(path, upstream_metadata(ctx)) as call, trio.open_nursery() as nursery:

            async def pump_up() -> None:
                async for message in messages:
                    await call.send(message)
                await call.close_send()

            nursery.start_soon(pump_up)
            async for message in call.responses():
                await send(message)
            nursery.cancel_scope.cancel()

    return BidiStreamMethod(handler)

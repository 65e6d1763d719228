"""Runs a gRPC method (as the gRPC transport's resolver gives it, behind its auth gate) for the /v3 gateway.

``call_unary`` returns the response bytes or raises the call's EtcdError. ``open_stream`` starts a streaming
method in the gateway's nursery and hands back a ``Stream``: a bounded channel of outcomes, each ("message",
bytes), ("error", EtcdError) or ("end", None), the last one ending it; closing the Stream cancels the call.
Streaming requests are what grpc-gateway forwards from the body: once they run out the call sees its request
stream end, as a gRPC client's CloseSend.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator

import trio

from etcdx.errors import EtcdError, StatusCode, etcd_error
from etcdx.log import get_logger
from etcdx.net.grpc_metrics import COUNTS
from etcdx.net.grpc_server import (
    BidiStreamMethod,
    Method,
    RpcContext,
    ServerStreamMethod,
    await_unary,
)

log = get_logger("etcdx.api.gateway")

DEADLINE_EXCEEDED = etcd_error(StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
# Responses a stream holds for a client that does not read; the method waits (as on gRPC flow control).
STREAM_BUFFER = 16


def is_streaming(method: Method) -> bool:
    return isinstance(method, ServerStreamMethod | BidiStreamMethod)


def is_bidi(method: Method) -> bool:
    return isinstance(method, BidiStreamMethod)


def as_etcd_error(exc: BaseException, path: str) -> EtcdError:
    """The status a failed handler ends its call with, as the gRPC transport sends it (the first EtcdError in
    an exception group; anything else is UNKNOWN with its text, and logged)."""
    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, EtcdError):
            return leaf
    log.exception("gateway handler failed", method=path)
    return EtcdError(StatusCode.UNKNOWN, str(leaves[0]))


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _started(ctx: RpcContext) -> None:
    """Counts the call in the gRPC metrics, as etcd's gateway calls reach its gRPC server (net/grpc_metrics.py)."""
    COUNTS.started[ctx.path, ctx.metadata.get("client-api-version", "unknown")] += 1


async def call_unary(method: Method, data: bytes, ctx: RpcContext) -> bytes:
    """The response, or the call's EtcdError (DEADLINE_EXCEEDED once ``ctx.deadline`` passes)."""
    _started(ctx)
    try:
        reply = await _call_unary(method, data, ctx)
    except EtcdError as exc:
        COUNTS.handled[ctx.path, exc.code] += 1
        raise
    COUNTS.handled[ctx.path, StatusCode.OK] += 1
    return reply


async def _call_unary(method: Method, data: bytes, ctx: RpcContext) -> bytes:
    with trio.move_on_at(_deadline(ctx)):
        try:
            return await await_unary(method, data, ctx)
        except Exception as exc:
            raise as_etcd_error(exc, ctx.path) from None
    raise DEADLINE_EXCEEDED


def _deadline(ctx: RpcContext) -> float:
    return ctx.deadline if ctx.deadline is not None else math.inf


class Stream:
    """One streaming call's outcomes (see the module docstring)."""

    def __init__(self, receive: trio.MemoryReceiveChannel, scope: trio.CancelScope) -> None:
        self._receive = receive
        self._scope = scope

    async def next(self) -> tuple[str, bytes | EtcdError | None]:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            return "end", None

    def close(self) -> None:
        self._scope.cancel()
        self._receive.close()


def open_stream(nursery: trio.Nursery, method: Method, requests: list[bytes], ctx: RpcContext) -> Stream:
    """Starts ``method`` with ``requests`` (a server-streaming method takes the first; a bidi one reads them
    all, then sees its request stream end)."""
    send_channel, receive_channel = trio.open_memory_channel(STREAM_BUFFER)
    scope = trio.CancelScope(deadline=_deadline(ctx))

    async def send(data: bytes) -> None:
        COUNTS.stream_sent[ctx.path] += 1
        await send_channel.send(("message", data))

    async def request_stream() -> AsyncIterator[bytes]:
        for request in requests:
            COUNTS.stream_received[ctx.path] += 1
            yield request

    async def run() -> None:
        _started(ctx)
        code = StatusCode.CANCELLED  # unless it ends otherwise: the client went
        try:
            async with send_channel:
                with scope:
                    try:
                        if isinstance(method, ServerStreamMethod):
                            COUNTS.stream_received[ctx.path] += 1
                            await method.handler(requests[0], ctx, send)
                        else:
                            assert isinstance(method, BidiStreamMethod)
                            await method.handler(request_stream(), ctx, send)
                    except Exception as exc:
                        error = as_etcd_error(exc, ctx.path)
                        code = error.code
                        await send_channel.send(("error", error))
                        return
                    code = StatusCode.OK
                    await send_channel.send(("end", None))
                if scope.cancelled_caught:  # the deadline (a client that went closed the channel: this send fails)
                    code = StatusCode.DEADLINE_EXCEEDED if trio.current_time() >= scope.deadline else code
                    await send_channel.send(("error", DEADLINE_EXCEEDED()))
        finally:
            COUNTS.handled[ctx.path, code] += 1

    nursery.start_soon(_quiet(run))
    return Stream(receive_channel, scope)


def _quiet(run):
    """``run``, ending quietly when the client went (its channel closed) while it was sending; anything else it
    raises is logged, never passed to the gateway's nursery (a client's call cannot stop the member)."""

    async def wrapped() -> None:
        try:
            await run()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("gateway stream failed")

    return wrapped

"""A read worker's method table: Range by LocalRange, every other method of etcd's API relayed to the member
over the member link, call metadata such as the auth token along, the member's status and text back. Unary
calls that end by themselves go as CALLs (link_client.py: no task per call); the streams, and the two unary
calls that may wait without bound until the client gives up (Lock, Campaign: the member must see the client
cancel), as link streams (link_stream.py: the member sees the client's cancel). A path the table does not know
is relayed as a bidirectional stream, so even the "unknown service" answers are the member's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from etcdx.net.grpc_server import BidiStreamMethod, Method, Resolver, RpcContext, Send, ServerStreamMethod, UnaryMethod
from etcdx.proxy.forward import upstream_metadata
from etcdx.proxy.routes import BIDI_STREAMS, SERVER_STREAMS, UNARY
from etcdx.worker.link_client import MemberLink
from etcdx.worker.link_stream import LinkStream
from etcdx.worker.local_range import RANGE_PATH, LocalRange

_MORE_UNARY = (
    "/etcdserverpb.KV/Put",
    "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn",
    "/etcdserverpb.KV/Compact",
    "/etcdserverpb.Lease/LeaseTimeToLive",
)
UNBOUNDED_WAITS = ("/v3lockpb.Lock/Lock", "/v3electionpb.Election/Campaign")
_MORE_BIDI = ("/etcdserverpb.Watch/Watch",)


def worker_resolver(link: MemberLink, ranges: LocalRange) -> tuple[Resolver, frozenset[str]]:
    routes: dict[str, Method] = {RANGE_PATH: ranges.method()}
    relayed = (path for path in (*UNARY, *_MORE_UNARY) if path not in UNBOUNDED_WAITS)
    routes.update((path, link.relay(path)) for path in relayed)
    routes.update((path, _unary_stream(link, path)) for path in UNBOUNDED_WAITS)
    routes.update((path, _server_stream(link, path)) for path in SERVER_STREAMS)
    routes.update((path, _bidi_stream(link, path)) for path in (*BIDI_STREAMS, *_MORE_BIDI))

    def resolve(path: str) -> Method:
        method = routes.get(path)
        return method if method is not None else _bidi_stream(link, path)

    return resolve, frozenset(path.split("/")[1] for path in routes)


def _unary_stream(link: MemberLink, path: str) -> UnaryMethod:
    async def handler(data: bytes, ctx: RpcContext) -> bytes:
        async with link.open_stream(path, upstream_metadata(ctx), ctx.deadline) as stream:
            await stream.send(data)
            stream.close_send()
            answers = [message async for message in stream.responses()]
        return answers[0]  # the member's unary call answers one message with OK, or raised its status

    return UnaryMethod(handler)


def _server_stream(link: MemberLink, path: str) -> ServerStreamMethod:
    async def handler(data: bytes, ctx: RpcContext, send: Send) -> None:
        async with link.open_stream(path, upstream_metadata(ctx), ctx.deadline) as stream:
            _deliver_to_client(stream, send)
            await stream.send(data)
            stream.close_send()
            async for message in stream.responses():
                await send(message)

    return ServerStreamMethod(handler)


def _bidi_stream(link: MemberLink, path: str) -> BidiStreamMethod:
    """Both directions relayed as they come; the call ends with the member's status, once the member ends it."""

    async def handler(messages: AsyncIterator[bytes], ctx: RpcContext, send: Send) -> None:
        async with (
            link.open_stream(path, upstream_metadata(ctx), ctx.deadline) as stream,
            trio.open_nursery() as nursery,
        ):

            async def pump_up() -> None:
                async for message in messages:
                    await stream.send(message)
                stream.close_send()

            _deliver_to_client(stream, send)
            divert = getattr(messages, "divert", None)  # the client call's StreamMessages (net/grpc_server.py)
            if divert is not None:
                divert(stream.try_send_nowait)  # the client's messages go to the link from its connection's reader
            nursery.start_soon(pump_up)
            async for message in stream.responses():
                await send(message)
            nursery.cancel_scope.cancel()

    return BidiStreamMethod(handler)


def _deliver_to_client(stream: LinkStream, send: Send) -> None:
    """The member's messages go to the client from the link's reader when nothing waits before them."""
    direct = getattr(send, "try_send_nowait", None)  # the client call's StreamSender (net/grpc_server.py)
    if direct is not None:
        stream.deliver_to(direct)

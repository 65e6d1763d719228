"""The client listener: every accepted connection is served in its own task of one nursery."""

from __future__ import annotations

import socket
from functools import partial

import trio

from etcdx.net.connection import serve_connection
from etcdx.net.grpc_limits import GrpcLimits
from etcdx.net.grpc_server import Resolver
from etcdx.net.http1 import HttpHandler


async def serve_client_port(
    host: str,
    port: int,
    *,
    resolve: Resolver,
    known_services: frozenset[str],
    http_handler: HttpHandler,
    max_recv_message_bytes: int,
    grpc_limits: GrpcLimits = GrpcLimits(),  # noqa: B008 - frozen
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Binds host:port (0 = any free port), reports the bound port, serves until cancelled.

    ``resolve`` maps a gRPC path to its method (None: unimplemented); ``known_services`` names the services
    it serves, so an unknown path is answered with grpc-go's "unknown method M for service S" when S is
    known and "unknown service S" when not. Requests larger than ``max_recv_message_bytes`` fail with
    RESOURCE_EXHAUSTED. HTTP/1.1 requests go to ``http_handler``. On cancellation every HTTP/2 connection
    gets a GOAWAY and every running handler is cancelled."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    for listener in listeners:
        listener.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    handler = partial(
        serve_connection,
        resolve=resolve,
        known_services=known_services,
        http_handler=http_handler,
        max_recv_message_bytes=max_recv_message_bytes,
        grpc_limits=grpc_limits,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(trio.serve_listeners, handler, listeners))
        task_status.started(listeners[0].socket.getsockname()[1])

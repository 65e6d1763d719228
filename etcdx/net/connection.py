"""One client connection: HTTP/2 (gRPC) or HTTP/1.1, told apart by the connection preface."""

from __future__ import annotations

import trio

from etcdx.log import get_logger
from etcdx.net.grpc_limits import GrpcLimits
from etcdx.net.grpc_server import GrpcConnection, Resolver
from etcdx.net.http1 import HttpHandler, is_request_line, may_start_request_line, serve_http1

log = get_logger("etcdx.net")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FIRST_LINE_LIMIT = 8 * 1024


async def serve_connection(
    stream: trio.abc.Stream,
    *,
    resolve: Resolver,
    known_services: frozenset[str],
    http_handler: HttpHandler,
    max_recv_message_bytes: int,
    grpc_limits: GrpcLimits = GrpcLimits(),  # noqa: B008 - frozen
) -> None:
    """Serves ``stream`` until the peer goes; never raises for anything the peer did."""
    try:
        async with stream:
            head = b""
            while len(head) < len(PREFACE) and PREFACE.startswith(head):
                data = await stream.receive_some(64 * 1024)
                if not data:
                    return
                head += data
            if head.startswith(PREFACE):
                await GrpcConnection(stream, resolve, known_services, max_recv_message_bytes, grpc_limits).run(head)
                return
            # Neither HTTP/2 nor, once its first line is complete, HTTP/1.x: etcd's connection
            # matcher drops such a connection at once, and so does this.
            while b"\n" not in head and len(head) < FIRST_LINE_LIMIT and may_start_request_line(head):
                data = await stream.receive_some(64 * 1024)
                if not data:
                    return
                head += data
            newline = head.find(b"\n")
            if not may_start_request_line(head) or (newline >= 0 and not is_request_line(head[:newline])):
                return
            await serve_http1(stream, head, http_handler)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:
        log.exception("connection failed")

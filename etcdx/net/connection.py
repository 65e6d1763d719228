"""One client connection: HTTP/2 (gRPC) or HTTP/1.1, told apart by the connection preface."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from etcdx.log import get_logger
from etcdx.net.conn_limits import READ_CHUNK, ConnectionLimits, ReadBudget
from etcdx.net.grpc_limits import GrpcLimits
from etcdx.net.grpc_server import GrpcConnection, Resolver
from etcdx.net.http1 import BodyLimit, HttpHandler, is_request_line, may_start_request_line, serve_http1
from etcdx.net.read_hub import ReadHub

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
    http_body_limit: BodyLimit,
    limits: ConnectionLimits,
    budget: ReadBudget,
    accepted_at: float,
    set_idle: Callable[[bool], None],
    relay_http1: Callable[[trio.abc.Stream, bytes], Awaitable[None]] | None = None,
    trust_forwarded_cn: bool = False,
    read_hub: ReadHub | None = None,
) -> None:
    """Serves ``stream`` until the peer goes; never raises for anything the peer did.

    The peer must show its protocol (the whole HTTP/2 preface, or a complete HTTP/1.x request line) within
    ``limits.handshake_timeout`` of ``accepted_at``, or the connection is closed without an answer. The
    connection starts idle (the cap may evict it); ``set_idle`` tells the cap when that changes. With
    ``relay_http1`` an HTTP/1.x connection is handed to it, with the bytes read so far, instead of served here
    (a read worker relays it to its member: etcdx/worker/). ``trust_forwarded_cn``: gRPC calls name their client
    certificate's CN in their metadata (the member's private socket, where its workers relay). ``read_hub``: where a
    gRPC connection on a plain socket waits for its reads (net/read_hub.py)."""
    try:
        async with stream:
            head = None
            with trio.move_on_at(accepted_at + limits.handshake_timeout):
                head = await _read_protocol_head(stream)
            if head is None:
                return
            set_idle(False)
            if head.startswith(PREFACE):
                await GrpcConnection(
                    stream,
                    resolve,
                    known_services,
                    max_recv_message_bytes,
                    grpc_limits,
                    verified_common_name(stream),
                    trust_forwarded_cn,
                    read_hub,
                ).run(head)
                return
            if relay_http1 is not None:
                await relay_http1(stream, head)
                return
            await serve_http1(
                stream,
                head,
                http_handler,
                body_limit=http_body_limit,
                limits=limits,
                budget=budget,
                started=accepted_at,
                set_idle=set_idle,
            )
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:
        log.exception("connection failed")


def verified_common_name(stream: trio.abc.Stream) -> str:
    """The CN of the client certificate a TLS stream verified; "" for plain streams and for none."""
    if not isinstance(stream, trio.SSLStream):
        return ""
    cert = stream.getpeercert()  # a dict only when the certificate was verified
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return value
    return ""


async def _read_protocol_head(stream: trio.abc.Stream) -> bytes | None:
    """The first bytes of the connection once they hold the HTTP/2 preface or an HTTP/1.x request line;
    None when the peer closes first or sends something else (etcd's connection matcher drops such a
    connection at once, and so does this)."""
    head = b""
    while len(head) < len(PREFACE) and PREFACE.startswith(head):
        data = await stream.receive_some(READ_CHUNK)
        if not data:
            return None
        head += data
    if head.startswith(PREFACE):
        return head
    while b"\n" not in head and len(head) < FIRST_LINE_LIMIT and may_start_request_line(head):
        data = await stream.receive_some(READ_CHUNK)
        if not data:
            return None
        head += data
    newline = head.find(b"\n")
    if not may_start_request_line(head) or (newline >= 0 and not is_request_line(head[:newline])):
        return None
    return head

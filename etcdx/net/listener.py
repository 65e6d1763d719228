"""The client listener: every accepted connection is served in its own task of one nursery, within the
connection cap (net/admission.py) and the time and memory bounds of net/conn_limits.py. On a TLS listener
(net/tls.py) the handshake is part of the connection's handshake time: it and the protocol head must both
arrive within ``handshake_timeout`` of the accept."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio

from etcdx.net.admission import ConnectionSlots
from etcdx.net.conn_limits import DEFAULT_LIMITS, ConnectionLimits, ReadBudget
from etcdx.net.connection import serve_connection
from etcdx.net.grpc_limits import GrpcLimits
from etcdx.net.grpc_server import READ_SIZE, Resolver
from etcdx.net.http1 import BodyLimit, HttpHandler, any_body_up_to
from etcdx.net.read_hub import ReadHub
from etcdx.net.sockets import BACKLOG, open_listeners
from etcdx.net.tls import ServerTls


@dataclass(frozen=True)
class ListenAddress:
    """Where a listener listens: TCP host:port (port 0: any free one) or, with ``unix``, the unix socket
    file "host:port"; with ``tls`` every connection is TLS."""

    host: str
    port: int
    tls: ServerTls | None = None
    unix: bool = False
    reuse_port: bool = False  # --socket-reuse-port


async def serve_client_port(
    host: str,
    port: int,
    *,
    resolve: Resolver,
    known_services: frozenset[str],
    http_handler: HttpHandler,
    max_recv_message_bytes: int,
    grpc_limits: GrpcLimits = GrpcLimits(),  # noqa: B008 - frozen
    http_body_limit: BodyLimit | None = None,
    limits: ConnectionLimits = DEFAULT_LIMITS,
    tls: ServerTls | None = None,
    unix: bool = False,
    reuse_port: bool = False,
    listeners: list[trio.SocketListener] | None = None,
    relay_http1: Callable[[trio.abc.Stream, bytes], Awaitable[None]] | None = None,
    trust_forwarded_cn: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Binds host:port (0 = any free port), reports the bound port, serves until cancelled.

    ``resolve`` maps a gRPC path to its method (None: unimplemented); ``known_services`` names the services
    it serves, so an unknown path is answered with grpc-go's "unknown method M for service S" when S is
    known and "unknown service S" when not. Requests larger than ``max_recv_message_bytes`` fail with
    RESOURCE_EXHAUSTED. HTTP/1.1 requests go to ``http_handler``; ``http_body_limit`` says how large a body
    each of them may carry (default: ``max_recv_message_bytes`` for any path). On cancellation every HTTP/2
    connection gets a GOAWAY and every running handler is cancelled. With ``tls`` every connection is
    TLS; with ``unix`` the listener is the unix socket named "host:port" (etcd's unix:// URLs); with
    ``reuse_port`` the port is bound with SO_REUSEPORT. ``listeners``, if given, are served instead of
    opening any (``open_private_unix_listener``); ``relay_http1`` takes over HTTP/1.x connections and
    ``trust_forwarded_cn`` takes each gRPC call's client CN from its metadata (net/connection.py)."""
    if listeners is None:
        listeners = await open_listeners(host, port, unix=unix, reuse_port=reuse_port)
    hub = ReadHub(READ_SIZE)  # where this port's idle gRPC connections on plain sockets wait for their reads
    serve = partial(
        serve_connection,
        resolve=resolve,
        known_services=known_services,
        http_handler=http_handler,
        max_recv_message_bytes=max_recv_message_bytes,
        grpc_limits=grpc_limits,
        http_body_limit=http_body_limit or any_body_up_to(max_recv_message_bytes),
        limits=limits,
        budget=ReadBudget(limits.read_budget_bytes),
        relay_http1=relay_http1,
        trust_forwarded_cn=trust_forwarded_cn,
        read_hub=hub,
    )
    slots = ConnectionSlots(limits.connection_cap())
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        admit = partial(_admit, slots, serve, tls, limits.handshake_timeout)
        await nursery.start(partial(trio.serve_listeners, admit, listeners))
        bound = listeners[0].socket.getsockname()
        task_status.started(bound[1] if isinstance(bound, tuple) else port)


def check_port_free(host: str, port: int) -> None:
    """Raises OSError (address in use) if any listener holds host:port, SO_REUSEPORT or not: bound without
    SO_REUSEPORT, a probe fails on any of them. Before a member shares its port with its read workers, so it
    never shares one with another process that set SO_REUSEPORT too."""
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(address)


async def open_private_unix_listener(path: str) -> trio.SocketListener:
    """A listener on the unix socket file ``path`` that only this user may connect to (mode 0600, set before
    it listens), replacing a stale file of that name."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


async def _admit(
    slots: ConnectionSlots, serve, tls: ServerTls | None, handshake_timeout: float, stream: trio.SocketStream
) -> None:
    """Serves ``stream`` if the cap admits it; closes it at once if not. An evicted connection's scope is
    cancelled, and serve_connection (or a refused TLS handshake) closes its stream on the way out. A
    connection in its TLS handshake is idle to the cap, so a flood of handshakes cannot keep others out."""
    accepted_at = trio.current_time()
    with trio.CancelScope() as scope:
        ticket = slots.admit(scope)
        if ticket is None:
            await trio.aclose_forcefully(stream)
            return
        try:
            if tls is not None:
                stream = await tls.accept(stream, deadline=accepted_at + handshake_timeout)
                if stream is None:
                    return
            await serve(stream, accepted_at=accepted_at, set_idle=ticket.set_idle)
        finally:
            slots.leave(ticket)

"""The peer port of a member: bound as etcd binds it, so the address is taken and checked.

Each accepted connection goes to ``handler`` (etcdx.peer's PeerTransport.handle_connection), on an https://
peer URL only after a TLS handshake that the peer TLS flags accept (a refused one is logged, as on the
client port). Without a handler (a member with no peers to hear from) connections are accepted and closed.
The handler owns the stream it is given and must close it; nothing it raises reaches the listener.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import trio

from etcdx.log import get_logger
from etcdx.net.sockets import open_listeners
from etcdx.net.tls import ServerTls

log = get_logger("etcdx.net")

PEER_HANDSHAKE_TIMEOUT = 10.0

PeerHandler = Callable[[trio.abc.Stream], Awaitable[None]]


async def hold_peer_port(
    host: str,
    port: int,
    *,
    tls: ServerTls | None = None,
    unix: bool = False,
    reuse_port: bool = False,
    handler: PeerHandler | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    listeners = await open_listeners(host, port, unix=unix, reuse_port=reuse_port)
    async with trio.open_nursery() as nursery:
        # serve_listeners rides out accept errors such as EMFILE instead of stopping the member.
        await nursery.start(trio.serve_listeners, partial(_serve, tls, handler), listeners)
        task_status.started(port if unix else listeners[0].socket.getsockname()[1])


async def _serve(tls: ServerTls | None, handler: PeerHandler | None, stream: trio.SocketStream) -> None:
    if tls is not None:
        deadline = trio.current_time() + PEER_HANDSHAKE_TIMEOUT
        accepted = await tls.accept(stream, deadline=deadline, https_compatible=False)
        if accepted is None:
            return
        if handler is not None:
            await _handle(handler, accepted)
            return
        with trio.move_on_after(PEER_HANDSHAKE_TIMEOUT):
            await accepted.aclose()  # close_notify: the peer can tell an accepted handshake from a refused one
        return
    if handler is not None:
        await _handle(handler, stream)
        return
    await trio.aclose_forcefully(stream)


async def _handle(handler: PeerHandler, stream: trio.abc.Stream) -> None:
    try:
        await handler(stream)
    except Exception:  # a peer connection never ends the listener
        log.exception("peer connection handler failed")
        await trio.aclose_forcefully(stream)

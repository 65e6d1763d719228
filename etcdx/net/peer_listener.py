"""The peer port of a single member: bound as etcd binds it, so the address is taken and checked.

Peers have nothing to say to a single member yet (the Raft issue gives this port its transport), so
connections are accepted and closed; on an https:// peer URL only after a TLS handshake that the peer
TLS flags accept (a refused one is logged, as on the client port).
"""

from __future__ import annotations

from functools import partial

import trio

from etcdx.net.sockets import open_listeners
from etcdx.net.tls import ServerTls

PEER_HANDSHAKE_TIMEOUT = 10.0


async def hold_peer_port(
    host: str,
    port: int,
    *,
    tls: ServerTls | None = None,
    unix: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    listeners = await open_listeners(host, port, unix=unix)
    async with trio.open_nursery() as nursery:
        # serve_listeners rides out accept errors such as EMFILE instead of stopping the member.
        await nursery.start(trio.serve_listeners, partial(_close, tls), listeners)
        task_status.started(port if unix else listeners[0].socket.getsockname()[1])


async def _close(tls: ServerTls | None, stream: trio.SocketStream) -> None:
    if tls is not None:
        deadline = trio.current_time() + PEER_HANDSHAKE_TIMEOUT
        accepted = await tls.accept(stream, deadline=deadline, https_compatible=False)
        if accepted is None:
            return
        with trio.move_on_after(PEER_HANDSHAKE_TIMEOUT):
            await accepted.aclose()  # close_notify: the peer can tell an accepted handshake from a refused one
        return
    await trio.aclose_forcefully(stream)

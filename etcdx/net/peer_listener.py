"""The peer port of a single member: bound as etcd binds it, so the address is taken and checked.

Peers have nothing to say to a single member yet (the Raft issue gives this port its transport), so
connections are accepted and closed.
"""

from __future__ import annotations

import trio


async def hold_peer_port(host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    listeners = await trio.open_tcp_listeners(port, host=host)
    async with trio.open_nursery() as nursery:
        task_status.started(listeners[0].socket.getsockname()[1])
        for listener in listeners:
            nursery.start_soon(_accept_and_close, listener)


async def _accept_and_close(listener: trio.SocketListener) -> None:
    async with listener:
        while True:
            stream = await listener.accept()
            await stream.aclose()

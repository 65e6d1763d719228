"""The peer port of a single member: bound as etcd binds it, so the address is taken and checked.

Peers have nothing to say to a single member yet (the Raft issue gives this port its transport), so
connections are accepted and closed.
"""

from __future__ import annotations

import trio


async def hold_peer_port(host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    listeners = await trio.open_tcp_listeners(port, host=host)
    async with trio.open_nursery() as nursery:
        # serve_listeners rides out accept errors such as EMFILE instead of stopping the member.
        await nursery.start(trio.serve_listeners, _close, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


async def _close(stream: trio.SocketStream) -> None:
    await stream.aclose()

"""Listening sockets for a listen URL: TCP on host:port, or a unix socket (etcd's unix:// and unixs://)."""

from __future__ import annotations

import contextlib
import os
import socket

import trio

BACKLOG = 4096


async def open_listeners(host: str, port: int, *, unix: bool = False) -> list[trio.SocketListener]:
    """TCP listeners on host:port (0 = a free port) with Nagle off; or, with ``unix``, one listener on the
    unix socket file named "host:port" in the working directory, as etcd names it, replacing a stale
    socket file left by an earlier run."""
    if not unix:
        listeners = await trio.open_tcp_listeners(port, host=host)
        for listener in listeners:
            listener.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return listeners
    path = f"{host}:{port}"
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return [trio.SocketListener(sock)]


def remote_address(stream: trio.SocketStream) -> str:
    """ "ip:port" of the peer of a TCP stream; "unix" for a unix socket; "" once it is gone."""
    try:
        address = stream.socket.getpeername()
    except OSError:
        return ""
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "unix"

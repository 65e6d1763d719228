"""Listening sockets for a listen URL: TCP on host:port, or a unix socket (etcd's unix:// and unixs://)."""

from __future__ import annotations

import contextlib
import os
import socket

import trio

BACKLOG = 4096


async def open_listeners(
    host: str, port: int, *, unix: bool = False, reuse_port: bool = False
) -> list[trio.SocketListener]:
    """TCP listeners on host:port (0 = a free port) with Nagle off and SO_REUSEADDR (as Go's listeners have
    it), with ``reuse_port`` also SO_REUSEPORT (--socket-reuse-port: other processes that set it may bind
    the same port); or, with ``unix``, one listener on the unix socket file named "host:port" in the working
    directory, as etcd names it, replacing a stale socket file left by an earlier run."""
    if not unix:
        if reuse_port:
            listeners = await _reuse_port_listeners(host, port)
        else:
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


async def _reuse_port_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """One listener per address ``host`` resolves to, each bound with SO_REUSEADDR and SO_REUSEPORT."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks = []
    try:
        for family, kind, proto, _, address in infos:
            sock = trio.socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            await sock.bind(address)
            sock.listen(BACKLOG)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return [trio.SocketListener(sock) for sock in socks]


def remote_address(stream: trio.SocketStream) -> str:
    """ "ip:port" of the peer of a TCP stream; "unix" for a unix socket; "" once it is gone."""
    try:
        address = stream.socket.getpeername()
    except OSError:
        return ""
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "unix"

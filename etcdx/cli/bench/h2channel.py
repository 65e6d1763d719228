"""Calls to one endpoint over a current HTTP/2 Connection, replaced when it becomes unusable.

While a replacement connects, new calls wait for it; when connecting fails they fail at once with
UNAVAILABLE until the next attempt RECONNECT_DELAY later (a gRPC channel in TRANSIENT_FAILURE behaves
so), which bounds a run against a dead server by --total or --duration as with grpcio.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from etcdx.cli.bench.grpc_wire import label
from etcdx.cli.bench.h2client import UNAVAILABLE, Call, Connection, Done, OnMessage
from etcdx.cli.bench.tls import Endpoint

CONNECT_TIMEOUT = 10.0
RECONNECT_DELAY = 0.1


class Stream:
    """A streaming call and the connection it runs on."""

    __slots__ = ("connection", "call")

    def __init__(self, connection: Connection | None, call: Call | None) -> None:
        self.connection = connection
        self.call = call


async def connect(endpoint: Endpoint, context: ssl.SSLContext | None, on_unusable=None) -> Connection:
    """A connection whose HTTP/2 greeting is done (the server's SETTINGS arrived); raises OSError if not."""
    loop = asyncio.get_running_loop()
    connection = Connection(f"{endpoint.host}:{endpoint.port}", endpoint.secure, on_unusable)
    secure = context if endpoint.secure else None
    transport = None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            transport, _ = await loop.create_connection(
                lambda: connection,
                endpoint.host,
                endpoint.port,
                ssl=secure,
                server_hostname=endpoint.host if secure else None,
            )
            if secure is not None:
                protocol = transport.get_extra_info("ssl_object").selected_alpn_protocol()
                if protocol != "h2":
                    raise ConnectionRefusedError(f"the server did not agree to HTTP/2 by ALPN (got {protocol!r})")
            failure = await connection.ready
            if failure is not None:
                raise ConnectionResetError(failure)
    except BaseException:
        if transport is not None:
            transport.close()
        raise
    return connection


class Channel:
    def __init__(self, endpoint: Endpoint, context: ssl.SSLContext | None) -> None:
        self.endpoint = endpoint
        self.context = context
        self.loop = asyncio.get_running_loop()
        self.connection: Connection | None = None  # Invariant: None or usable
        self.waiting: list[tuple[Callable[[Connection], None], Done]] = []  # calls made while connecting
        self.failure: str | None = None  # set from a failed attempt until the next one starts
        self.reconnecting: asyncio.Task | None = None
        self.closing = False

    async def open(self) -> None:
        """Returns after the first attempt to connect; if it failed, calls fail and attempts go on."""
        await self._attempt()
        if self.connection is None:
            self.reconnecting = self.loop.create_task(self._reconnect())

    def unary(self, path: bytes, message: bytes, done: Done) -> None:
        connection = self.connection
        if connection is not None:
            connection.unary(path, message, done)
        else:
            self._defer(lambda c: c.unary(path, message, done), done)

    def open_stream(self, path: bytes, on_message: OnMessage, done: Done) -> Stream:
        """A streaming call on the current connection (if there is none, ``done`` gets UNAVAILABLE)."""
        connection = self.connection
        if connection is None:
            self.loop.call_soon(done, label(UNAVAILABLE, self.failure or "connecting"), b"")
            return Stream(None, None)
        return Stream(connection, connection.open_stream(path, on_message, done))

    @staticmethod
    def send(stream: Stream, message: bytes) -> None:
        if stream.connection is not None:
            stream.connection.send(stream.call, message)

    @staticmethod
    def cancel(stream: Stream) -> None:
        if stream.connection is not None:
            stream.connection.cancel(stream.call)

    def close(self) -> None:
        self.closing = True
        if self.reconnecting is not None:
            self.reconnecting.cancel()
        if self.connection is not None:
            self.connection.close()

    def _defer(self, start: Callable[[Connection], None], done: Done) -> None:
        if self.failure is not None or self.closing:
            self.loop.call_soon(done, label(UNAVAILABLE, self.failure or "channel closed"), b"")
        else:
            self.waiting.append((start, done))

    def _on_unusable(self, connection: Connection) -> None:
        if connection is self.connection:
            self.connection = None
            if not self.closing:
                self.reconnecting = self.loop.create_task(self._reconnect())

    async def _attempt(self) -> None:
        try:
            connection = await connect(self.endpoint, self.context, self._on_unusable)
        except (OSError, TimeoutError) as exc:
            self.failure = f"failed to connect to {self.endpoint.address}: {exc or type(exc).__name__}"
            waiting, self.waiting = self.waiting, []
            for _start, done in waiting:
                done(label(UNAVAILABLE, self.failure), b"")
            return
        if self.closing:
            connection.close()
            return
        self.connection, self.failure = connection, None
        waiting, self.waiting = self.waiting, []
        for start, _done in waiting:
            start(connection)

    async def _reconnect(self) -> None:
        while not self.closing and self.connection is None:
            if self.failure is not None:
                await asyncio.sleep(RECONNECT_DELAY)
                self.failure = None
            await self._attempt()

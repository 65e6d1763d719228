"""HTTP/1.1 on the client port (h11): keep-alive, Content-Length or chunked bodies, streamed responses.

A streamed response (an async iterator body) ends when the iterator ends or when the client goes; then
the iterator is closed (aclose), so the handler's generator can clean up.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import h11
import trio

from etcdx.log import get_logger

log = get_logger("etcdx.net.http1")

MAX_REQUEST_BODY = 32 * 1024 * 1024
MAX_READ_AHEAD = 64 * 1024  # bytes of the next requests kept while a response streams


@dataclass
class HttpRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | AsyncIterator[bytes] = b""


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]

# An HTTP/1.x request line: method token, target, version (what etcd's connection matcher accepts).
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ \r\n]+ HTTP/[0-9]\.[0-9]\r?")


_METHOD_PREFIX = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]*( |$)")


def is_request_line(line: bytes) -> bool:
    """True when ``line`` (without its newline) is an HTTP/1.x request line."""
    return _REQUEST_LINE.fullmatch(line) is not None


def may_start_request_line(head: bytes) -> bool:
    """False once ``head`` (no newline yet) cannot begin a request line: its method has a non-token byte."""
    return _METHOD_PREFIX.match(head) is not None


async def serve_http1(stream: trio.abc.Stream, initial: bytes, handler: HttpHandler) -> None:
    """Serves requests on ``stream`` until the client closes, an error, or a response that must close."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    conn.receive_data(initial)
    try:
        while True:
            request = await _read_request(stream, conn)
            if request is None:
                return
            await _respond(stream, conn, await _call(handler, request))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = b"400 Bad Request"
            headers = [
                ("content-type", "text/plain; charset=utf-8"),
                ("connection", "close"),
                ("content-length", str(len(body))),
            ]
            with contextlib.suppress(h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(
                    conn.send(h11.Response(status_code=400, headers=headers))
                    + conn.send(h11.Data(data=body))
                    + conn.send(h11.EndOfMessage())
                )


async def _read_request(stream: trio.abc.Stream, conn: h11.Connection) -> HttpRequest | None:
    request = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            data = await stream.receive_some(64 * 1024)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_REQUEST_BODY:
                raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            return HttpRequest(
                method=request.method.decode(),
                target=request.target.decode("latin-1"),
                headers=[(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers],
                body=bytes(body),
            )
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def _call(handler: HttpHandler, request: HttpRequest) -> HttpResponse:
    try:
        return await handler(request)
    except Exception:
        log.exception("http handler failed", target=request.target)
        return HttpResponse(500, [("content-type", "text/plain; charset=utf-8")], b"Internal Server Error\n")


async def _respond(stream: trio.abc.Stream, conn: h11.Connection, response: HttpResponse) -> None:
    headers = list(response.headers)
    if isinstance(response.body, bytes):
        headers.append(("content-length", str(len(response.body))))
        out = conn.send(h11.Response(status_code=response.status, headers=headers))
        if response.body:
            out += conn.send(h11.Data(data=response.body))
        await stream.send_all(out + conn.send(h11.EndOfMessage()))
        return
    headers.append(("transfer-encoding", "chunked"))
    await stream.send_all(conn.send(h11.Response(status_code=response.status, headers=headers)))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cancel_when_client_goes, stream, conn, nursery.cancel_scope)
        await _send_chunks(stream, conn, response.body)
        nursery.cancel_scope.cancel()


async def _send_chunks(stream: trio.abc.Stream, conn: h11.Connection, body: AsyncIterator[bytes]) -> None:
    """Sends the body as chunks and the end; on a failing iterator, logs and leaves the message unfinished
    (so the connection closes: the client sees a truncated body, not a clean end)."""
    try:
        async with contextlib.aclosing(body) if hasattr(body, "aclose") else contextlib.nullcontext():
            async for chunk in body:
                if chunk:
                    await stream.send_all(conn.send(h11.Data(data=chunk)))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    except Exception:
        log.exception("http response body failed")
        return
    await stream.send_all(conn.send(h11.EndOfMessage()))


async def _cancel_when_client_goes(stream: trio.abc.Stream, conn: h11.Connection, scope: trio.CancelScope) -> None:
    """Reads while a response streams: bytes the client sends ahead are kept for the next request; end of
    file (or a broken connection) cancels ``scope``."""
    try:
        while data := await stream.receive_some(64 * 1024):
            conn.receive_data(data)
            if len(conn.trailing_data[0]) > MAX_READ_AHEAD:
                await trio.sleep_forever()  # stop reading: TCP pushes back on the client
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()

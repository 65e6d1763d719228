"""HTTP/1.1 on the client port (h11): keep-alive, Content-Length or chunked bodies, streamed responses.

Limits (net/conn_limits.py has the values), all applied before anything is buffered:
- the request line and headers: at most ``max_head_bytes``, else 431 and close, as Go's net/http answers;
- the body, by path (``BodyLimit``): a path that takes a body gets at most its limit (a larger declared
  length is refused with 413 before any of it is read; a chunked body is cut at the limit); a body sent to a
  path that takes none is read and dropped up to ``DISCARD_LIMIT`` bytes, and a larger one is not read at
  all: the request is answered with ``Connection: close`` (what etcd's Go server does);
- time: head within ``head_timeout`` and the whole request within ``request_timeout`` of its first byte, no
  more than ``idle_timeout`` between requests, a whole response within ``response_timeout``; a connection
  past any of these is closed without an answer;
- memory: reads of ``READ_CHUNK`` bytes, and what a connection buffers beyond ``FREE_BYTES`` is held in
  units of the listener's ReadBudget (a declared body's units are taken at once, before it is read; a body
  larger than the whole budget is 413).

A streamed response (an async iterator body) ends when the iterator ends or when the client goes; then
the iterator is closed (aclose), so the handler's generator can clean up; it is closed too when its headers
cannot be sent.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import h11
import trio

from etcdx.log import get_logger
from etcdx.net.conn_limits import READ_CHUNK, BudgetExceeded, BudgetHold, ConnectionLimits, ReadBudget

log = get_logger("etcdx.net.http1")

MAX_READ_AHEAD = 64 * 1024  # bytes of the next requests kept while a response streams
# Go's net/http reads and drops this much of a body the handler did not read, keeping the connection.
DISCARD_LIMIT = 256 * 1024
# After an answer that closes a connection the client may still be sending to: how long to wait before the
# close, so the client reads the answer before the close resets the connection.
LINGER_SECONDS = 0.5


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
# (method, target) -> the largest body a request may carry; None: the path takes no body.
BodyLimit = Callable[[str, str], "int | None"]


def any_body_up_to(limit: int) -> BodyLimit:
    """A BodyLimit that lets every path take a body of up to ``limit`` bytes."""
    return lambda method, target: limit


# An HTTP/1.x request line: method token, target, version (what etcd's connection matcher accepts).
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ \r\n]+ HTTP/[0-9]\.[0-9]\r?")


_METHOD_PREFIX = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]*( |$)")


def is_request_line(line: bytes) -> bool:
    """True when ``line`` (without its newline) is an HTTP/1.x request line."""
    return _REQUEST_LINE.fullmatch(line) is not None


def may_start_request_line(head: bytes) -> bool:
    """False once ``head`` (no newline yet) cannot begin a request line: its method has a non-token byte."""
    return _METHOD_PREFIX.match(head) is not None


def error_reply(status: int) -> bytes:
    """The bare answer Go's net/http writes before it closes a connection it cannot serve."""
    text = f"{status} {_reason(status).decode()}"
    return f"HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{text}".encode()


class _Refused(Exception):
    """The request is answered with ``error_reply(status)`` and the connection closed."""

    def __init__(self, status: int) -> None:
        self.status = status


async def serve_http1(
    stream: trio.abc.Stream,
    initial: bytes,
    handler: HttpHandler,
    *,
    body_limit: BodyLimit,
    limits: ConnectionLimits,
    budget: ReadBudget,
    started: float,
    set_idle: Callable[[bool], None],
) -> None:
    """Serves requests on ``stream`` until the client closes, an error, a limit, or a response that must
    close. ``initial`` holds the bytes already read, and ``started`` when the first request began;
    ``set_idle`` is told when the connection waits between requests (True) and when that ends (False)."""
    session = _Session(stream, handler, body_limit, limits, budget.hold(), set_idle)
    session.conn.receive_data(initial)
    try:
        await session.run(started)
    finally:
        session.hold.release()


class _Session:
    def __init__(
        self,
        stream: trio.abc.Stream,
        handler: HttpHandler,
        body_limit: BodyLimit,
        limits: ConnectionLimits,
        hold: BudgetHold,
        set_idle: Callable[[bool], None],
    ) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)
        self.handler = handler
        self.body_limit = body_limit
        self.limits = limits
        self.hold = hold
        self.set_idle = set_idle

    async def run(self, started: float) -> None:
        conn = self.conn
        while True:
            try:
                outcome = await self._read_request(started)
            except h11.RemoteProtocolError as error:
                await self._refuse(error.error_status_hint)
                return
            except _Refused as refusal:
                await self._refuse(refusal.status)
                return
            except BudgetExceeded:
                await self._refuse(413)
                return
            if outcome is None:
                return
            request, close = outcome
            response = await _call(self.handler, request)
            if close:
                response.headers = [*response.headers, ("connection", "close")]
            if not await self._respond(response):
                return
            if close:
                await self._linger()
                return
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
            self.hold.settle(self._buffered())
            started = await self._wait_for_next_request()
            if started is None:
                return

    def _buffered(self) -> int:
        return len(self.conn.trailing_data[0])

    async def _receive(self, body_bytes: int = 0) -> None:
        """Reads the next chunk into h11 (b"" at end of file), first holding budget for it."""
        await self.hold.reserve(self._buffered() + body_bytes)
        self.conn.receive_data(await self.stream.receive_some(READ_CHUNK))

    async def _wait_for_next_request(self) -> float | None:
        """When the next request began (now, if it is already buffered); None after ``idle_timeout``."""
        if self._buffered():
            return trio.current_time()
        self.set_idle(True)
        with trio.move_on_after(self.limits.idle_timeout):
            await self._receive()
            self.set_idle(False)
            return trio.current_time()
        return None

    async def _read_request(self, started: float) -> tuple[HttpRequest, bool] | None:
        """The next request and whether its answer must close the connection; None when the client closes
        or runs out of time."""
        head = None
        with trio.move_on_at(started + self.limits.request_timeout):
            with trio.move_on_at(started + self.limits.head_timeout):
                head = await self._next_event()
            if not isinstance(head, h11.Request):
                return None
            method = head.method.decode()
            target = head.target.decode("latin-1")
            headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers]
            limit = self.body_limit(method, target)
            length = _declared_length(head)
            if limit is None:
                close = await self._discard_body(length, expects_continue=_expects_continue(head))
                return HttpRequest(method, target, headers, b""), close
            if length is not None and length > limit:
                raise _Refused(413)
            if length is not None:  # the whole body's share of the budget at once, before a byte of it
                await self.hold.reserve(self._buffered() + length)
            body = await self._read_body(limit)
            if body is None:
                return None
            return HttpRequest(method, target, headers, body), False
        return None

    async def _next_event(self, body_bytes: int = 0):
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.conn.they_are_waiting_for_100_continue:
                await self.stream.send_all(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            await self._receive(body_bytes)

    async def _read_body(self, limit: int) -> bytes | None:
        body = bytearray()
        while True:
            event = await self._next_event(len(body))
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    raise _Refused(413)
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                return None

    async def _discard_body(self, length: int | None, *, expects_continue: bool) -> bool:
        """Reads and drops the body of a request to a path that takes none, as Go does for up to
        DISCARD_LIMIT bytes; True when it is larger (or awaits 100-continue) and so is left unread."""
        if expects_continue or (length is not None and length > DISCARD_LIMIT):
            return True
        dropped = 0
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                dropped += len(event.data)
                if dropped > DISCARD_LIMIT:
                    return True
            elif isinstance(event, h11.EndOfMessage):
                return False
            else:
                raise _Refused(400)

    async def _respond(self, response: HttpResponse) -> bool:
        """Sends ``response``; False when the client did not take it in time."""
        if isinstance(response.body, bytes):
            with trio.move_on_after(self.limits.response_timeout):
                await _respond(self.stream, self.conn, response)
                return True
            return False
        await _respond(self.stream, self.conn, response)
        return True

    async def _refuse(self, status: int) -> None:
        with trio.move_on_after(self.limits.response_timeout):
            await self.stream.send_all(error_reply(status))
            await self._linger()

    async def _linger(self) -> None:
        """Waits a moment before the close, so a client still sending reads the answer before the close
        resets the connection (etcd's server, behind its connection multiplexer, does the same: no
        half-close, a wait of 0.5 s, then the close). Nothing more is read: a client that keeps sending
        fills its window and stops."""
        await trio.sleep(LINGER_SECONDS)


def _declared_length(request: h11.Request) -> int | None:
    """The Content-Length of ``request`` (h11 has checked it), or None for a chunked body."""
    fields = dict(request.headers)
    if b"transfer-encoding" in fields:
        return None
    return int(fields.get(b"content-length", 0))


def _expects_continue(request: h11.Request) -> bool:
    return any(name == b"expect" and value.lower() == b"100-continue" for name, value in request.headers)


def _reason(status: int) -> bytes:
    """The status line's reason phrase, as Go's net/http writes it (the standard one; none if unknown)."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


async def _call(handler: HttpHandler, request: HttpRequest) -> HttpResponse:
    try:
        return await handler(request)
    except Exception:
        log.exception("http handler failed", target=request.target)
        return HttpResponse(500, [("content-type", "text/plain; charset=utf-8")], b"Internal Server Error\n")


async def _respond(stream: trio.abc.Stream, conn: h11.Connection, response: HttpResponse) -> None:
    headers = list(response.headers)
    if isinstance(response.body, bytes):
        # A handler may declare the length itself: the answer to HEAD names the length of the GET body it omits.
        if not any(name == "content-length" for name, _ in headers):
            headers.append(("content-length", str(len(response.body))))
        out = conn.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
        if response.body:
            out += conn.send(h11.Data(data=response.body))
        await stream.send_all(out + conn.send(h11.EndOfMessage()))
        return
    headers.append(("transfer-encoding", "chunked"))
    try:
        await stream.send_all(
            conn.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
        )
    except BaseException:
        if hasattr(response.body, "aclose"):  # the body's producer must end even though it never started
            with trio.CancelScope(shield=True):
                await response.body.aclose()
        raise
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

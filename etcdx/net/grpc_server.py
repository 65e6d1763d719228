"""gRPC over the HTTP/2 driver, with grpc-go's server behaviour (what etcd runs).

Per connection: one reader loop feeds the driver and dispatches events; one writer task sends
whatever the driver has produced (so everything produced while handling one read goes out in one
write); one task per call runs its handler, except for inline and deferred unary methods, which
hold no task (see their classes). Replies made in a batch go out in one write without waiting for the writer
task's turn on a plain TCP connection (GrpcConnection._flush_now): the reader's, once it dispatched a read's
calls; deferred replies, once the work that answered them calls ``flush_deferred_replies`` (the server's
Ready loop, after each step; the reader too, after a read's calls, for what they queued on other connections,
such as a read worker's relayed calls on its member link). That spares a lone request's reply a pass of the
scheduler; the writer sends whatever the socket did not take, and every reply nobody flushes. Message framing:
1 byte compressed flag + 4 byte big-endian length. A call ends with trailers grpc-status / grpc-message.

Back-pressure: a unary call holds at most one message (bounded by max_recv_message_bytes) and acknowledges
bytes as they arrive. A streaming call acknowledges received bytes while fewer than STREAM_BACKLOG_BYTES of
complete messages wait for its handler, and withholds them otherwise, until the handler catches up; so one
call buffers at most the backlog, one stream window and one partial message, and a message larger than the
stream window still gets through (its bytes are acknowledged while it is being received). On top of that, every
call withholds acknowledgements while the connection holds its budget (REQUEST_BUDGET, or twice the largest
message if more) of request bytes not yet taken by handlers, and gets them once it holds less; so a connection
holds at most that budget plus the connection receive window of request bytes, however many streams it has.

Bounded work, bounded output. A read takes at most READ_SIZE bytes, fed to the driver FEED_SLICE bytes at a
time with a checkpoint after any slice of many small frames (so a flood of tiny requests or resets holds the
loop for a slice, not a read, while bulk DATA goes through at full speed). Unary calls whose request is
complete are dispatched after the whole read was handled (so a request reset in the same read never runs), and
only while the output waiting for the peer (queued plus in the writer) is below OUTPUT_HIGH_WATER; the reader
waits for the peer to take its output before it reads more, as grpc-go stops reading from a peer with too many
control frame answers queued. Messages wait for the same room before they are queued. A checkpoint every
DISPATCH_BATCH calls, or as soon as the calls dispatched since the last one took DISPATCH_BUDGET (costly inline
calls: a 500-key page takes most of a millisecond), lets other connections and tasks run; so a task every other
call waits for, such as the read workers' barrier, waits for one turn of costly calls per connection, not four.

Keepalive (grpc-go ServerParameters, as etcd sets them): after ``keepalive_interval`` without a frame from the
peer the server pings; with nothing from the peer within ``keepalive_timeout`` after that, the connection is
closed. The ping policy (EnforcementPolicy) is the HTTP/2 driver's.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import trio

from etcdx import errors
from etcdx._native import load
from etcdx.errors import EtcdError, StatusCode, etcd_error
from etcdx.log import get_logger
from etcdx.net import http2
from etcdx.net.grpc_limits import GrpcLimits
from etcdx.net.grpc_metrics import COUNTS
from etcdx.net.grpc_status import encode_grpc_message, parse_grpc_timeout
from etcdx.net.read_hub import ReadHub

log = get_logger("etcdx.net.grpc")
grpchead = load("grpchead")

_PREFIX = struct.Struct(">BI")
_RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
_OK_TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]  # as _finish sends them for OK
# Texts as etcd 3.5.1 (grpc-go) answers them.
_DEADLINE_EXCEEDED = etcd_error(StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
_COMPRESSED = etcd_error(StatusCode.INTERNAL, "grpc: compressed flag set with identity or empty encoding")
_UNEXPECTED_EOF = etcd_error(StatusCode.UNKNOWN, "unexpected EOF")
STREAM_BACKLOG_BYTES = 1024 * 1024
REQUEST_BUDGET = 16 * 1024 * 1024
OUTPUT_HIGH_WATER = 1024 * 1024
READ_SIZE = 64 * 1024
FEED_SLICE = 4096
SLICE_EVENTS = 8
DISPATCH_BATCH = 16
DISPATCH_BUDGET = 0.0005  # seconds of inline handlers after which dispatch yields, whatever the count
_KEEPALIVE_PING = b"etcdxkap"
_NO_ERROR = 0
_PROTOCOL_ERROR = 1
GOAWAY_TIMEOUT = 1.0
_RESUME = object()  # take_parked: the read hub handled a read in part; the connection's task does the rest


@dataclass(slots=True)
class RpcContext:
    path: str
    metadata: dict[str, str]
    deadline: float | None
    # The Common Name of the client certificate the TLS handshake verified ("" without one): etcd's
    # user name for certificate-based auth.
    peer_common_name: str = ""


# The metadata key by which a read worker passes on the CN its TLS handshake verified (etcdx/worker/): honoured
# only on the member's private connections (``trust_forwarded_cn``), where only its workers connect.
FORWARDED_CN = "etcdx-forwarded-client-cn"

Send = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True)
class UnaryMethod:
    handler: Callable[[bytes, RpcContext], Awaitable[bytes]]


@dataclass(frozen=True)
class InlineUnaryMethod:
    """A unary method whose handler never waits: it runs in the connection's reader, with no task of its own
    (so it cannot be cancelled or time out while it runs; its reply still waits for send window if needed)."""

    handler: Callable[[bytes, RpcContext], bytes]


Reply = Callable[[bytes | EtcdError], None]


class DeferredOutput(Protocol):
    """A connection that queues deferred replies and sends them in one write when flushed."""

    def _flush_now(self) -> None: ...


# Connections a deferred reply queued output on since the last flush_deferred_replies (see that function).
# Invariant: only live connections (each removes its own when it ends: withdraw_deferred_output), so it stays
# bounded between flushes, however far apart they are.
_DEFERRED_OUTPUT: set[DeferredOutput] = set()


def defer_output(connection: DeferredOutput) -> None:
    """``connection`` queued a deferred reply: the next flush_deferred_replies sends it. The connection must
    also send it by itself eventually (its writer task), as nothing promises that a flush comes."""
    _DEFERRED_OUTPUT.add(connection)


def withdraw_deferred_output(connection: DeferredOutput) -> None:
    """For a connection that ends: no flush may reach it any more."""
    _DEFERRED_OUTPUT.discard(connection)


def flush_deferred_replies() -> None:
    """Sends now, one write per connection, the replies deferred calls queued since the last call, instead of
    leaving them to each connection's writer task (which would send them at its next turn, one scheduler pass
    later). For the task that finished a batch of deferred work (the Ready loop after a step): replies queued
    in that batch share the write. Needless but harmless when there is nothing to send."""
    while _DEFERRED_OUTPUT:
        _DEFERRED_OUTPUT.pop()._flush_now()


@dataclass(frozen=True)
class DeferredUnaryMethod:
    """A unary method whose handler starts the work and returns at once, handing ``reply`` to whatever finishes
    it (such as the apply of a proposal): no task per call. The handler runs in the connection's reader; an
    error it raises ends the call. ``reply`` takes the response bytes or an EtcdError, once, and never raises;
    it is a no-op if the call ended meanwhile (stream reset, connection gone). A reply that arrives after the
    call's deadline ends it with DEADLINE_EXCEEDED instead (the client enforces its deadline itself too).
    A handler that has its answer at once may return the response bytes instead of calling ``reply`` (then
    it must not call it); otherwise it returns None."""

    handler: Callable[[bytes, RpcContext, Reply], bytes | None]


class StreamSender:
    """A streaming handler's ``send``: ``await send(message)`` sends one message, waiting for window as needed.

    ``try_send_nowait(message)`` is for code that runs outside the handler's task, such as a read worker's member
    link delivering the member's messages: it sends the message only if that needs no wait (window, output room),
    queues the output for the next flush_deferred_replies and returns True; otherwise it sends nothing and returns
    False. The caller keeps the call's messages in order: no try_send_nowait while an ``await send`` runs."""

    __slots__ = ("_call",)

    def __init__(self, call: _Call) -> None:
        self._call = call

    async def __call__(self, message: bytes) -> None:
        COUNTS.stream_sent[self._call.ctx.path] += 1
        await self._call.connection._send_message(self._call, message)

    def try_send_nowait(self, message: bytes) -> bool:
        connection = self._call.connection
        if not connection._send_message_nowait(self._call, message):
            return False
        COUNTS.stream_sent[self._call.ctx.path] += 1
        defer_output(connection)
        return True


class StreamMessages:
    """A bidirectional handler's request messages: ``async for message in messages``; a request stream that broke
    a rule raises its EtcdError after the messages before it.

    ``divert(take)`` is for code that can take a message outside the handler's task (a read worker relaying the
    call on its member link): from then on, a message that arrives while none waits before it and the handler
    holds none (it has asked for the next) goes to ``take(message)`` from the connection's reader, which sends
    nothing or queues it for the next flush_deferred_replies and returns True, or returns False and the message
    waits for the iterator as usual. Order is kept: a diverted message never overtakes one the handler got."""

    __slots__ = ("_call", "_receive")

    def __init__(self, call: _Call, receive: trio.MemoryReceiveChannel) -> None:
        self._call = call
        self._receive = receive

    def divert(self, take: Callable[[bytes], bool]) -> None:
        self._call.divert = take

    def __aiter__(self) -> StreamMessages:
        return self

    async def __anext__(self) -> bytes:
        call = self._call
        call.in_hand = False
        try:
            message = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        if isinstance(message, EtcdError):
            raise message
        call.connection._consumed(call, message)
        call.in_hand = True
        return message


@dataclass(frozen=True)
class ServerStreamMethod:
    handler: Callable[[bytes, RpcContext, Send], Awaitable[None]]


@dataclass(frozen=True)
class BidiStreamMethod:
    handler: Callable[[AsyncIterator[bytes], RpcContext, Send], Awaitable[None]]


Method = UnaryMethod | InlineUnaryMethod | DeferredUnaryMethod | ServerStreamMethod | BidiStreamMethod
_UNARY = (UnaryMethod, InlineUnaryMethod, DeferredUnaryMethod)
Resolver = Callable[[str], Method | None]


async def await_unary(method: Method, data: bytes, ctx: RpcContext) -> bytes:
    """A unary method's response (``method`` is one of the three unary kinds), awaited in the caller's task; its
    error raised (a deferred method's EtcdError reply too). For callers outside a connection: the JSON gateway,
    the member link's streams."""
    if isinstance(method, InlineUnaryMethod):
        return method.handler(data, ctx)
    if not isinstance(method, DeferredUnaryMethod):
        return await method.handler(data, ctx)  # UnaryMethod
    done = trio.Event()
    outcome: list[bytes | EtcdError] = []

    def reply(result: bytes | EtcdError) -> None:
        if not outcome:
            outcome.append(result)
            done.set()

    at_once = method.handler(data, ctx, reply)
    if at_once is not None:
        return at_once
    await done.wait()
    if isinstance(outcome[0], EtcdError):
        raise outcome[0]
    return outcome[0]


class _Call:
    __slots__ = (
        "stream_id",
        "method",
        "ctx",
        "buffer",
        "messages",
        "inbox",
        "scope",
        "headers_sent",
        "closed",
        "window",
        "half_closed",
        "failed",
        "rejected",
        "unacknowledged",
        "backlog",
        "held",
        "started_at",
        "connection",
        "divert",
        "in_hand",
    )

    def __init__(self, stream_id: int, method: Method, ctx: RpcContext, connection: GrpcConnection) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.method = method
        self.ctx = ctx
        self.buffer = bytearray()
        self.messages: list[bytes] = []  # unary: the complete request messages
        self.inbox: trio.MemorySendChannel | None = None  # streaming: messages to the handler
        self.scope: trio.CancelScope | None = None
        self.headers_sent = False
        self.closed = False  # the call's response is finished or the stream was reset
        self.window: trio.Event | None = None  # set when the peer grants send window; made when needed
        self.half_closed = False
        self.failed = False  # ended by the transport before or while its handler ran
        self.rejected = False  # streaming: its request stream broke a rule; later DATA is discarded
        self.unacknowledged = 0  # streaming: flow-controlled bytes received but not yet acknowledged
        self.backlog = 0  # streaming: framed bytes of the messages waiting in the inbox
        self.held = 0  # request bytes counted in GrpcConnection._held (see GrpcConnection._holding)
        self.started_at = 0.0  # trio time the call started (kept only for --metrics extensive)
        self.divert: Callable[[bytes], bool] | None = None  # bidirectional: see StreamMessages.divert
        self.in_hand = False  # bidirectional: the handler took a message and has not asked for the next

    def __call__(self, outcome: bytes | EtcdError) -> None:
        """A deferred call's ``reply`` (DeferredUnaryMethod): the call itself, so that none is made per call."""
        self.connection._deferred_reply(self, outcome)


class GrpcConnection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        resolve: Resolver,
        known_services: frozenset[str],
        max_recv_message_bytes: int,
        limits: GrpcLimits = GrpcLimits(),  # noqa: B008 - frozen
        peer_common_name: str = "",
        trust_forwarded_cn: bool = False,
        read_hub: ReadHub | None = None,
    ) -> None:
        """``peer_common_name``: the CN this connection's TLS verified; with ``trust_forwarded_cn`` each call's is
        the one its metadata forwards instead (FORWARDED_CN). ``read_hub``: where a plain socket connection
        waits for its reads (net/read_hub.py; None: in trio's wait_readable)."""
        self._stream = stream
        # A plain TCP connection's socket, for _flush_now (None: TLS, or any other stream: the writer only).
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._hub = read_hub if self._socket is not None else None
        self._fd = self._socket.fileno() if self._socket is not None else -1  # the number the hub knows it by
        self._rest = b""  # a read's bytes take_parked left to the task (_take_rest)
        self._unsent = b""  # what _flush_now's write left over: the writer sends it before anything else
        self._peer_common_name = peer_common_name
        self._trust_forwarded_cn = trust_forwarded_cn
        self._resolve = resolve
        self._known_services = known_services
        self._max_recv = max_recv_message_bytes
        self._limits = limits
        self._h2 = http2.server_connection(
            limits.max_concurrent_streams,
            ping_min_time=limits.ping_min_time,
            clock=trio.current_time,
            shared_resets=limits.shared_resets,
        )
        self._ready: deque[_Call] = deque()  # unary calls whose request is complete, not yet dispatched
        self._held = 0  # request bytes received and not yet taken by a handler (Invariant: sum of call.held)
        self._budget = max(REQUEST_BUDGET, 2 * max_recv_message_bytes)
        self._withheld: set[_Call] = set()  # calls with bytes unacknowledged for the budget or their backlog
        self._in_flight = 0  # bytes the writer is sending now
        self._drained = trio.Event()  # set (and replaced) each time the writer finished a send
        self._last_read = trio.current_time()
        self._calls: dict[int, _Call] = {}
        self._window_waiters: set[_Call] = set()  # Invariant: the calls waiting in _send_message for send window
        self._wake_writer = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._writing = False  # Invariant: True while a send_all is under way (the byte stream is mid-frame)
        # True while the reader handles a read (_take), which ends with _flush_now: see _flush_later.
        self._batching = False

    async def run(self, initial: bytes) -> None:
        """Serves the connection until the peer goes or breaks the protocol, or until cancelled: then
        the peer gets a GOAWAY, and every running handler is cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._writer)
                if self._limits.server_pings:
                    nursery.start_soon(self._keepalive)
                try:
                    await self._take(initial)
                    drained = len(initial) < READ_SIZE
                    while not self._closing:
                        data = await self._receive(drained)
                        if data is _RESUME:  # the read hub handled a read, short of what needs a wait
                            await self._take_rest()
                            await self._output_room()
                            drained = True
                            continue
                        if not data:
                            break
                        self._last_read = trio.current_time()
                        COUNTS.received_bytes += len(data)
                        await self._take(data)
                        await self._output_room()
                        drained = len(data) < READ_SIZE
                except (http2.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                finally:
                    self._closing = True
                    nursery.cancel_scope.cancel()
        finally:
            if self._hub is not None:
                self._hub.forget(self._fd)
            withdraw_deferred_output(self)
            for call in self._calls.values():  # ended with the connection, unanswered: the client is gone
                COUNTS.handled[call.ctx.path, StatusCode.CANCELLED] += 1
            await self._say_goodbye()

    async def _receive(self, drained: bool) -> bytes | object:
        """The next read (b"" at the end of the stream). On a plain TCP connection whose last read was short
        (``drained``: the socket is most likely empty), it waits for readability first and then reads once,
        instead of trio's recv, which would try first, fail with EAGAIN and then wait: one system call and one
        scheduler pass less per read under load. A reset connection reads as the end of the stream.

        With a read hub, such a connection parks there instead: the hub handles the reads that need no wait
        (take_parked) without waking this task, and returns the first one that does, or _RESUME when the hub
        handled part of it (see take_parked)."""
        if self._socket is None or not drained:
            return await self._stream.receive_some(READ_SIZE)
        if self._hub is not None and self._hub.running:
            if self._socket.fileno() < 0:
                raise trio.ClosedResourceError
            return await self._hub.wait(self, self._fd)
        while True:
            await trio.lowlevel.wait_readable(self._socket)
            fd = self._socket.fileno()
            if fd < 0:
                raise trio.ClosedResourceError
            try:
                return os.read(fd, READ_SIZE)
            except BlockingIOError:
                continue  # readable, then drained by nobody else: spurious; wait again
            except OSError:
                return b""

    async def _say_goodbye(self) -> None:
        """Sends GOAWAY if the connection can still carry it (not broken, not mid-frame)."""
        if self._writing:
            return
        broken = (http2.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError)
        with trio.CancelScope(shield=True), trio.move_on_after(GOAWAY_TIMEOUT), contextlib.suppress(*broken):
            self._h2.close()
            await self._stream.send_all(self._unsent + self._h2.bytes_to_send())

    # -- writing -----------------------------------------------------------------------------

    def _flush_soon(self) -> None:
        self._wake_writer.set()

    def _flush_later(self) -> None:
        """For output that may wait for the read being handled: while the reader handles one (``_batching``), what
        anyone queues leaves with the _flush_now that ends it (the reader only ever waits in between at a
        checkpoint or in _output_room, which wakes the writer), so the writer is not woken only to find nothing
        to send; otherwise as _flush_soon."""
        if not self._batching:
            self._wake_writer.set()

    def _flush_now(self) -> None:
        """Sends the queued output from the calling task, without waiting for the writer task: one nonblocking
        write on a plain TCP connection, the rest (if the socket took less) left to the writer, ahead of
        anything queued later. Only while the writer is not sending (so the byte stream is between frames).
        Coalescing is the caller's: call it once a batch of work has queued its replies (a read's requests,
        an apply step's answers), not per reply. Errors are left to the writer, which meets them again."""
        if self._writing or self._socket is None or self._unsent or self._closing:
            self._flush_soon()
            return
        data = self._h2.bytes_to_send()
        if not data:
            return
        fd = self._socket.fileno()  # -1 once closed: never a number reused by another file
        try:
            sent = os.write(fd, data) if fd >= 0 else 0
        except OSError:
            sent = 0
        COUNTS.sent_bytes += sent
        if sent < len(data):
            self._unsent = data[sent:]
            self._flush_soon()
        self._wake_room_waiters()

    def _wake_room_waiters(self) -> None:
        """After a send: wakes whoever waits in _output_room, to check the backlog again."""
        self._drained.set()
        self._drained = trio.Event()

    def _backlog(self) -> int:
        """Output not yet taken by the peer's socket: queued in the driver, left over by _flush_now, and what the
        writer is sending."""
        return self._h2.queued_bytes + self._in_flight + len(self._unsent)

    async def _output_room(self) -> None:
        """Waits until the output backlog is at most OUTPUT_HIGH_WATER."""
        while self._backlog() > OUTPUT_HIGH_WATER:
            self._flush_soon()
            await self._drained.wait()

    async def _writer(self) -> None:
        try:
            while True:
                await self._wake_writer.wait()
                self._wake_writer = trio.Event()
                data = self._h2.bytes_to_send()
                if self._unsent:
                    data, self._unsent = self._unsent + data, b""
                if data:
                    # Cancelled before its first byte leaves (the connection ends while the writer was waking),
                    # the data is still whole: it stays in _unsent for the goodbye, which then still can send
                    # its GOAWAY (it cannot once a send_all is under way: the stream may be mid-frame).
                    self._unsent = data
                    await trio.lowlevel.checkpoint_if_cancelled()
                    self._unsent = b""
                    self._writing = True
                    self._in_flight = len(data)
                    await self._stream.send_all(data)
                    COUNTS.sent_bytes += len(data)
                    self._in_flight = 0
                    self._writing = False
                self._wake_room_waiters()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._closing = True
            self._nursery.cancel_scope.cancel()

    async def _keepalive(self) -> None:
        """grpc-go's server keepalive: ping a peer silent for keepalive_interval; close if still silent after
        keepalive_timeout."""
        interval, timeout = self._limits.keepalive_interval, self._limits.keepalive_timeout
        while True:
            await trio.sleep_until(self._last_read + interval)
            if trio.current_time() - self._last_read < interval:
                continue
            self._h2.ping(_KEEPALIVE_PING)
            self._flush_soon()
            pinged_at = trio.current_time()
            await trio.sleep(timeout)
            if self._last_read < pinged_at:
                log.info("closing a connection that did not answer a keepalive ping")
                self._closing = True
                self._nursery.cancel_scope.cancel()
                return

    # -- reading -----------------------------------------------------------------------------

    def take_parked(self, data: bytes) -> object | None:
        """A read the read hub made while this connection's task is parked in _receive, handled in the hub's task
        as run's loop would handle it (_take, then _output_room), as far as that needs no wait: None when done;
        _RESUME when the rest is for the task (_take_rest: the slices after one that made many events, where _take
        would checkpoint; the calls beyond a dispatch batch or budget; room for a backlog of output). An exception
        (a protocol error) is raised in the task by the hub."""
        if self._closing:
            return _RESUME
        self._last_read = trio.current_time()
        COUNTS.received_bytes += len(data)
        self._batching = True
        try:
            for end in self._feed_slices(data):
                if end < len(data):
                    self._rest = data[end:]
                    return _RESUME
            done = self._dispatch_nowait()
        finally:
            self._batching = False
        if not done or self._closing or self._backlog() > OUTPUT_HIGH_WATER:
            return _RESUME
        return None

    async def _take_rest(self) -> None:
        """After take_parked returned _RESUME: the bytes it left (fed as _take feeds a read, which dispatches
        every call), or the dispatch it left; both end with the flush that ends a read."""
        rest, self._rest = self._rest, b""
        if rest:
            await self._take(rest)
            return
        self._batching = True
        try:
            await self._dispatch_ready()
        finally:
            self._batching = False

    async def _take(self, data: bytes) -> None:
        """Handles one read: fed to the driver in slices of FEED_SLICE bytes, with a checkpoint after each slice
        that made SLICE_EVENTS events or more (many small frames), then the complete requests dispatched; the
        output leaves at the end (_dispatch_ready's _flush_now)."""
        self._batching = True
        try:
            for _ in self._feed_slices(data):
                await trio.lowlevel.checkpoint()
            await self._dispatch_ready()
        finally:
            self._batching = False

    def _feed_slices(self, data: bytes) -> Iterator[int]:
        """Feeds a read to the driver: at once if it is at most FEED_SLICE bytes, else in slices of that size until
        the connection closes. After each slice that made SLICE_EVENTS events or more (many small frames), yields
        where the next slice starts, so that the reader can pause there (len(data) after the last one)."""
        if len(data) <= FEED_SLICE:
            self._feed(data)
            return
        for start in range(0, len(data), FEED_SLICE):
            end = start + FEED_SLICE
            events = self._feed(data[start:end])
            if self._closing:
                return
            if events >= SLICE_EVENTS:
                yield min(end, len(data))
                if self._closing:
                    return

    def _feed(self, data: bytes) -> int:
        """Feeds ``data`` to the driver and handles its events; returns how many there were."""
        events = self._h2.receive(data)
        for event in events:
            if isinstance(event, http2.Data):
                self._on_data(event)
            elif isinstance(event, http2.RequestHeaders):
                self._on_request(event)
            elif isinstance(event, http2.StreamEnded):
                self._on_end(event.stream_id)
            elif isinstance(event, http2.WindowOpened):
                self._on_window(event.stream_id)
            elif isinstance(event, http2.StreamReset):
                self._on_reset(event.stream_id)
            elif isinstance(event, http2.ConnectionEnded):
                self._closing = True
        self._flush_later()
        return len(events)

    def _on_request(self, event: http2.RequestHeaders) -> None:
        """Starts a call. A request that is not gRPC (not POST, or no application/grpc content type) is
        refused with RST_STREAM(PROTOCOL_ERROR), as etcd 3.5's grpc-go does."""
        path, is_grpc, timeout_value, metadata = grpchead.request_head(event.headers)
        if not is_grpc:
            self._h2.reset(event.stream_id, _PROTOCOL_ERROR)
            return
        timeout = parse_grpc_timeout(timeout_value) if timeout_value is not None else None
        method = self._resolve(path)
        if method is None:
            self._send_status(event.stream_id, *unimplemented_status(path, self._known_services))
            if not event.end_stream:
                self._h2.reset(event.stream_id, _NO_ERROR)
            return
        deadline = trio.current_time() + timeout if timeout is not None else None
        common_name = metadata.pop(FORWARDED_CN, "") if self._trust_forwarded_cn else self._peer_common_name
        call = _Call(event.stream_id, method, RpcContext(path, metadata, deadline, common_name), self)
        self._calls[event.stream_id] = call
        COUNTS.started[path, metadata.get("client-api-version", "unknown")] += 1
        if COUNTS.timing:
            call.started_at = trio.current_time()
        if not isinstance(method, _UNARY):
            # Unbounded in messages, bounded in bytes by withholding acknowledgements (see the module doc).
            send, receive = trio.open_memory_channel(math.inf)
            call.inbox = send
            self._nursery.start_soon(self._run_streaming, call, receive)
        if event.end_stream:
            self._on_end(event.stream_id)

    def _on_data(self, event: http2.Data) -> None:
        """Frames messages out of DATA and acknowledges the bytes as the module doc says."""
        sid = event.stream_id
        call = self._calls.get(sid)
        if call is None or call.failed or call.rejected:
            self._h2.acknowledge(sid, event.flow_controlled_length)
        else:
            call.unacknowledged += event.flow_controlled_length
            self._frame_messages(call, event.data)
            self._hold(call, self._holding(call))
            self._acknowledge_if_room(call)
        if event.end_stream:
            self._on_end(sid)

    def _frame_messages(self, call: _Call, data: bytes) -> None:
        if not call.buffer and len(data) >= 5:
            flag, length = _PREFIX.unpack_from(data)
            if flag == 0 and len(data) == 5 + length and length <= self._max_recv:
                self._deliver(call, data[5:])  # the common case: one whole message in one DATA frame
                return
        call.buffer += data
        while len(call.buffer) >= 5 and not (call.failed or call.rejected):
            flag, length = _PREFIX.unpack_from(call.buffer)
            if length > self._max_recv:
                self._reject(call, errors.message_too_large(length, self._max_recv))
            elif flag != 0:
                self._reject(call, _COMPRESSED())
            elif len(call.buffer) < 5 + length:
                return
            else:
                message = bytes(call.buffer[5 : 5 + length])
                del call.buffer[: 5 + length]
                self._deliver(call, message)

    def _deliver(self, call: _Call, message: bytes) -> None:
        if call.inbox is not None:
            COUNTS.stream_received[call.ctx.path] += 1
            divert = call.divert
            if divert is not None and not call.backlog and not call.in_hand and self._diverted(call, divert, message):
                return
            call.backlog += 5 + len(message)
            call.inbox.send_nowait(message)
        elif not call.messages:
            call.messages.append(message)  # a unary call takes its first message; grpc-go ignores the rest

    def _diverted(self, call: _Call, take: Callable[[bytes], bool], message: bytes) -> bool:
        """``take(message)`` (StreamMessages.divert). What it raises ends that call, as its handler's error would
        (failure_status), never the connection, whose reader it runs in."""
        try:
            return take(message)
        except Exception as exc:
            self._fail(call, EtcdError(*failure_status(call.ctx.path, exc)))
            return True

    def _reject(self, call: _Call, error: EtcdError) -> None:
        """The request stream broke a rule. A unary call ends now; a streaming handler gets ``error`` from
        its request iterator after the messages before it (as grpc-go's Recv returns it)."""
        if call.inbox is None:
            self._fail(call, error)
            return
        call.rejected = True
        call.buffer.clear()
        call.inbox.send_nowait(error)
        call.inbox.close()

    @staticmethod
    def _holding(call: _Call) -> int:
        """The request bytes ``call`` holds: a partial message, and the messages its handler has not taken."""
        if call.inbox is not None:
            return len(call.buffer) + call.backlog
        return len(call.buffer) + (len(call.messages[0]) if call.messages else 0)

    def _hold(self, call: _Call, size: int) -> None:
        """``call`` now holds ``size`` request bytes (0: handed to its handler, or ended). Calls whose bytes were
        withheld for the connection's budget get them acknowledged once the connection is back under it. Nothing
        to do when ``size`` is what the call holds already: the connection's total is unchanged, and every change of
        it was followed by that check."""
        if size == call.held:
            return
        self._held += size - call.held
        call.held = size
        if self._withheld and self._held < self._budget:
            for waiting in list(self._withheld):
                self._acknowledge_if_room(waiting)
            self._flush_soon()

    def _release_window(self, call: _Call) -> None:
        """A finished (or dispatched unary) call's withheld bytes go back to the connection window."""
        self._withheld.discard(call)
        if call.unacknowledged:
            self._h2.acknowledge(call.stream_id, call.unacknowledged)
            call.unacknowledged = 0

    def _acknowledge_if_room(self, call: _Call) -> None:
        """Acknowledges what ``call`` received while the connection holds less than its budget and (streaming)
        the call's backlog is below STREAM_BACKLOG_BYTES; else remembers the call as withheld."""
        if not call.unacknowledged or call.closed:
            self._withheld.discard(call)
        elif call.backlog < STREAM_BACKLOG_BYTES and self._held < self._budget:
            self._withheld.discard(call)
            self._h2.acknowledge(call.stream_id, call.unacknowledged)
            call.unacknowledged = 0
        else:
            self._withheld.add(call)

    def _on_end(self, stream_id: int) -> None:
        call = self._calls.get(stream_id)
        if call is None or call.half_closed:
            return
        call.half_closed = True
        if call.failed or call.rejected:
            return
        if call.inbox is not None:
            if call.buffer:
                call.inbox.send_nowait(_UNEXPECTED_EOF())  # the request ended inside a message
            call.inbox.close()
        elif call.messages:
            self._ready.append(call)  # dispatched by _dispatch_ready once this read is handled
        else:
            self._fail(call, _UNEXPECTED_EOF)

    async def _dispatch_ready(self) -> None:
        """Runs the unary calls whose request is complete, unless reset meanwhile; see the module doc."""
        ready = self._ready
        dispatched = 0
        since = time.perf_counter()  # the budget's clock: cheaper to read than trio's, and the same seconds
        while ready:
            if self._backlog() > OUTPUT_HIGH_WATER:
                await self._output_room()
            call = ready.popleft()
            if call.closed or self._closing:
                continue
            self._dispatch(call)
            dispatched += 1
            if dispatched % DISPATCH_BATCH == 0 or time.perf_counter() - since >= DISPATCH_BUDGET:
                self._flush_soon()
                await trio.lowlevel.checkpoint()
                since = time.perf_counter()
        flush_deferred_replies()  # what the handlers queued elsewhere (a read worker's member link) leaves now
        self._flush_now()

    def _dispatch_nowait(self) -> bool:
        """_dispatch_ready as far as it goes without a wait (one batch, within the budget, while the backlog
        allows): True when every ready call ran, and then the output left as _dispatch_ready sends it."""
        ready = self._ready
        dispatched = 0
        since = time.perf_counter()
        while ready:
            if (
                self._backlog() > OUTPUT_HIGH_WATER
                or dispatched == DISPATCH_BATCH
                or time.perf_counter() - since >= DISPATCH_BUDGET
            ):
                self._flush_now()  # the replies of what ran so far, as _dispatch_ready sends them at a batch's end
                return False
            call = ready.popleft()
            if call.closed or self._closing:
                continue
            self._dispatch(call)
            dispatched += 1
        flush_deferred_replies()
        self._flush_now()
        return True

    def _dispatch(self, call: _Call) -> None:
        """Runs one ready unary call: inline, deferred, or in a task of its own."""
        self._hold(call, 0)
        self._release_window(call)
        message = call.messages[0]
        if call.ctx.deadline is not None and trio.current_time() >= call.ctx.deadline:
            self._fail(call, _DEADLINE_EXCEEDED)  # already expired on arrival: no handler runs
        elif isinstance(call.method, InlineUnaryMethod):
            self._run_inline(call, message)
        elif isinstance(call.method, DeferredUnaryMethod):
            self._run_deferred(call, message)
        else:
            self._nursery.start_soon(self._run_unary, call, message)

    def _on_window(self, stream_id: int) -> None:
        if stream_id == 0:
            for call in self._window_waiters:
                call.window.set()
        else:
            call = self._calls.get(stream_id)
            if call is not None and call.window is not None:
                call.window.set()

    def _on_reset(self, stream_id: int) -> None:
        call = self._calls.pop(stream_id, None)
        if call is not None:
            COUNTS.handled[call.ctx.path, StatusCode.CANCELLED] += 1  # the client gave up, as grpc-go counts it
            call.closed = True
            self._hold(call, 0)
            self._release_window(call)
            if call.scope is not None:
                call.scope.cancel()
            if call.inbox is not None:
                call.inbox.close()
            if call.window is not None:
                call.window.set()

    def _fail(self, call: _Call, error: EtcdError | type[EtcdError]) -> None:
        """Ends a call early (before its handler ran or while it runs) with ``error``."""
        call.failed = True
        if call.scope is not None:
            call.scope.cancel()
        if call.inbox is not None:
            call.inbox.close()
        self._finish(call, error.code, error.message)

    # -- running handlers --------------------------------------------------------------------

    async def _run_unary(self, call: _Call, message: bytes) -> None:
        if call.closed:
            return  # reset by the peer before this task started
        code, text, reply = StatusCode.OK, "", None
        try:
            with trio.CancelScope(deadline=_deadline(call)) as scope:
                call.scope = scope
                reply = await call.method.handler(message, call.ctx)
        except Exception as exc:
            code, text = failure_status(call.ctx.path, exc)
        if scope.cancelled_caught:
            if call.closed:
                return
            code, text, reply = StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded", None
        if reply is not None:
            await self._send_message(call, reply)
        self._finish(call, code, text)

    def _run_inline(self, call: _Call, message: bytes) -> None:
        try:
            reply = call.method.handler(message, call.ctx)
        except Exception as exc:
            self._finish(call, *failure_status(call.ctx.path, exc))
            return
        self._reply(call, reply)

    def _run_deferred(self, call: _Call, message: bytes) -> None:
        try:
            at_once = call.method.handler(message, call.ctx, call)
        except Exception as exc:
            self._finish(call, *failure_status(call.ctx.path, exc))
            return
        if at_once is not None:
            self._reply(call, at_once)

    def _deferred_reply(self, call: _Call, outcome: bytes | EtcdError) -> None:
        """A deferred call's ``reply`` (DeferredUnaryMethod's contract). It runs in whatever task finished the
        work, so nothing may escape from it: an unexpected failure ends the call as UNKNOWN."""
        if call.closed or self._closing:
            return
        try:
            if call.ctx.deadline is not None and trio.current_time() >= call.ctx.deadline:
                self._finish(call, _DEADLINE_EXCEEDED.code, _DEADLINE_EXCEEDED.message)
            elif isinstance(outcome, EtcdError):
                self._finish(call, outcome.code, outcome.message)
            else:
                self._reply(call, outcome)
            defer_output(self)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._finish(call, *failure_status(call.ctx.path, exc))

    def _reply(self, call: _Call, reply: bytes) -> None:
        """Sends a unary call's response and ends it; waits for send window in a task of its own if needed.

        The common case, headers not sent yet and the message fitting the window and one frame, goes out as
        one piece: headers, message and OK trailers (what _send_message_nowait and _finish would send)."""
        if not call.headers_sent and self._backlog() <= OUTPUT_HIGH_WATER:
            try:
                sent = self._h2.send_response(
                    call.stream_id, _RESPONSE_HEADERS, _PREFIX.pack(0, len(reply)), reply, _OK_TRAILERS
                )
            except http2.StreamClosedError:
                self._gone(call)
                return
            if sent:
                call.headers_sent = True
                self._ended(call, StatusCode.OK)
                return
        if not self._send_message_nowait(call, reply):
            self._nursery.start_soon(self._send_and_finish, call, reply)
            return
        self._finish(call, StatusCode.OK, "")

    async def _send_and_finish(self, call: _Call, reply: bytes) -> None:
        with trio.CancelScope(deadline=_deadline(call)) as scope:
            call.scope = scope
            await self._send_message(call, reply)
        if not scope.cancelled_caught:
            self._finish(call, StatusCode.OK, "")
        elif not call.closed:
            self._finish(call, _DEADLINE_EXCEEDED.code, _DEADLINE_EXCEEDED.message)

    async def _run_streaming(self, call: _Call, receive: trio.MemoryReceiveChannel) -> None:
        code, text = StatusCode.OK, ""
        send = StreamSender(call)
        try:
            with trio.CancelScope(deadline=_deadline(call)) as scope:
                call.scope = scope
                if isinstance(call.method, ServerStreamMethod):
                    first = await self._first_message(call, receive)
                    if first is not None:
                        await call.method.handler(first, call.ctx, send)
                else:
                    await call.method.handler(StreamMessages(call, receive), call.ctx, send)
        except Exception as exc:
            code, text = failure_status(call.ctx.path, exc)
        if scope.cancelled_caught:
            if call.closed or call.failed:
                return
            code, text = StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded"
        if not call.failed:
            self._finish(call, code, text)

    async def _first_message(self, call: _Call, receive: trio.MemoryReceiveChannel) -> bytes | None:
        async for message in receive:
            if isinstance(message, EtcdError):
                raise message
            self._consumed(call, message)
            return message
        self._fail(call, _UNEXPECTED_EOF)
        return None

    def _consumed(self, call: _Call, message: bytes) -> None:
        call.backlog -= 5 + len(message)
        if not call.closed:
            self._hold(call, self._holding(call))
            if call.unacknowledged:
                self._acknowledge_if_room(call)
                self._flush_soon()

    def _send_message_nowait(self, call: _Call, message: bytes) -> bool:
        """Sends one length-prefixed message in one DATA frame if the window allows; False (nothing sent) if not.

        A stream the peer reset in the frames being handled right now counts as sent (nothing to do)."""
        try:
            return self._put_message_nowait(call, message)
        except http2.StreamClosedError:
            self._gone(call)
            return True

    def _gone(self, call: _Call) -> None:
        """The HTTP/2 driver already closed this stream: the peer reset it in the same read, and that read's
        StreamReset event may not be handled yet (a request taken from the same read was answered first). Ends
        the call now as that event would (_on_reset: a streaming handler is cancelled, its inbox closed), so
        that the event finds nothing left to do; a call it already ended is only marked closed."""
        if self._calls.get(call.stream_id) is call:
            self._on_reset(call.stream_id)
            return
        call.closed = True
        self._hold(call, 0)

    def _put_message_nowait(self, call: _Call, message: bytes) -> bool:
        h2c = self._h2
        sid = call.stream_id
        if 5 + len(message) > min(h2c.send_window(sid), h2c.max_frame_size) or self._backlog() > OUTPUT_HIGH_WATER:
            return False
        if not call.headers_sent:
            h2c.send_headers(sid, _RESPONSE_HEADERS)
            call.headers_sent = True
        h2c.send_data(sid, _PREFIX.pack(0, len(message)) + message)
        return True

    async def _send_message(self, call: _Call, message: bytes) -> None:
        """Sends one length-prefixed message, waiting for send window as needed."""
        try:
            await self._put_message(call, message)
        except http2.StreamClosedError:
            self._gone(call)
            await self._abandon(call)

    async def _put_message(self, call: _Call, message: bytes) -> None:
        if call.closed:
            await self._abandon(call)
            return
        h2c = self._h2
        sid = call.stream_id
        if not call.headers_sent:
            h2c.send_headers(sid, _RESPONSE_HEADERS)
            call.headers_sent = True
        data = _PREFIX.pack(0, len(message)) + message
        view = memoryview(data)
        while view:
            if call.closed:
                await self._abandon(call)
                return
            if self._backlog() > OUTPUT_HIGH_WATER:
                await self._output_room()
                continue
            size = min(h2c.send_window(sid), h2c.max_frame_size, len(view))
            if size <= 0:
                call.window = trio.Event()
                self._window_waiters.add(call)
                self._flush_soon()
                try:
                    await call.window.wait()
                finally:
                    self._window_waiters.discard(call)
                continue
            h2c.send_data(sid, bytes(view[:size]))
            view = view[size:]
        self._flush_soon()

    @staticmethod
    async def _abandon(call: _Call) -> None:
        """The peer reset the stream: ends the handler at this checkpoint (its scope is cancelled)."""
        if call.scope is not None:
            call.scope.cancel()
        await trio.lowlevel.checkpoint()

    def _finish(self, call: _Call, code: int, text: str) -> None:
        """Sends the trailers (or a trailers-only response) and forgets the call."""
        if call.closed:
            return
        self._forget_call(call, code)
        if call.headers_sent:
            trailers = [(b"grpc-status", str(int(code)).encode())]
        else:
            trailers = [*_RESPONSE_HEADERS, (b"grpc-status", str(int(code)).encode())]
        trailers.append((b"grpc-message", encode_grpc_message(text)))  # empty on OK, as grpc-go sends it
        with contextlib.suppress(http2.StreamClosedError, http2.ProtocolError):
            self._h2.send_headers(call.stream_id, trailers, end_stream=True)
        self._end_request_side(call)

    def _ended(self, call: _Call, code: int) -> None:
        """What _finish does for a call whose trailers are out already (sent with its response)."""
        self._forget_call(call, code)
        self._end_request_side(call)

    def _forget_call(self, call: _Call, code: int) -> None:
        """Counts the call as ended with ``code`` and lets go of it and of the request bytes it held."""
        call.closed = True
        COUNTS.handled[call.ctx.path, code] += 1
        if COUNTS.timing:
            COUNTS.observe_handling(call.ctx.path, trio.current_time() - call.started_at)
        self._calls.pop(call.stream_id, None)
        self._hold(call, 0)
        self._release_window(call)

    def _end_request_side(self, call: _Call) -> None:
        """After the call's last frame is queued: the request side ends too, and the output goes out."""
        if not call.half_closed:
            self._h2.reset(call.stream_id, _NO_ERROR)  # the client may stop sending (RFC 9113 8.1)
        self._flush_later()

    def _send_status(self, stream_id: int, code: int, text: str) -> None:
        """A trailers-only response for a stream no call was made for; nothing if the peer reset it already."""
        trailers = [
            *_RESPONSE_HEADERS,
            (b"grpc-status", str(int(code)).encode()),
            (b"grpc-message", encode_grpc_message(text)),
        ]
        with contextlib.suppress(http2.StreamClosedError):
            self._h2.send_headers(stream_id, trailers, end_stream=True)


def unimplemented_status(path: str, known_services: frozenset[str]) -> tuple[int, str]:
    """The status of a call to ``path`` when no method serves it, in grpc-go's words."""
    service, _, method = path.lstrip("/").partition("/")
    if service in known_services:
        return StatusCode.UNIMPLEMENTED, f"unknown method {method} for service {service}"
    return StatusCode.UNIMPLEMENTED, f"unknown service {service}"


def _deadline(call: _Call) -> float:
    return call.ctx.deadline if call.ctx.deadline is not None else math.inf


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def failure_status(path: str, exc: Exception) -> tuple[int, str]:
    """The status a failed handler of ``path`` ends its call with (handlers may run nurseries, so their errors
    can arrive wrapped in exception groups); an error that is not an EtcdError is logged, as a bug."""
    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, EtcdError):
            return leaf.code, leaf.message
    log.exception("handler failed", method=path)
    return StatusCode.UNKNOWN, str(leaves[0])

"""One stream call a worker opened on the member link (link_frames.py: OPEN ... END), on the member's side: the
method runs in a task of its own, as the member's HTTP/2 server runs a streaming call (net/grpc_server.py).

A bidirectional method reads the worker's messages as they come; any other takes the first (UNKNOWN "unexpected
EOF" if the worker half-closes before one), and a unary method's answer is the call's one message. The call
ends with the handler's status (``failure_status`` of what it raised), DEADLINE_EXCEEDED once the worker's
deadline passes, or nothing at all once the worker cancels it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

from etcdx.errors import EtcdError, StatusCode
from etcdx.net.grpc_metrics import COUNTS
from etcdx.net.grpc_server import (
    BidiStreamMethod,
    Method,
    RpcContext,
    ServerStreamMethod,
    await_unary,
    failure_status,
)
from etcdx.worker.link_credit import StreamCredit
from etcdx.worker.link_frames import LinkError, encode_credit, encode_message
from etcdx.worker.link_socket import LinkSocket

_UNEXPECTED_EOF = (StatusCode.UNKNOWN, "unexpected EOF")
_DEADLINE = (StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")


class MemberStream:
    def __init__(self, call_id: int, ctx: RpcContext, socket: LinkSocket) -> None:
        self.call_id = call_id
        self.ctx = ctx
        self._socket = socket
        self._credit = StreamCredit()
        self._inbox, self._messages = trio.open_memory_channel[bytes](math.inf)  # bounded by the credit
        self._scope: trio.CancelScope | None = None
        self.cancelled = False
        self._divert: Callable[[bytes], bool] | None = None  # see MemberMessages.divert
        self._in_hand = False  # the handler took a message and has not asked for the next
        self._queued = 0  # messages in the inbox
        self._open = True  # until the worker's HALF_CLOSE or CANCEL: a message after it breaks the protocol
        self._failure: tuple[int, str] | None = None  # the status a failed divert ended the call with

    # -- the link's reader ------------------------------------------------------------------

    def deliver(self, message: bytes) -> None:
        self._credit.received(len(message))
        COUNTS.stream_received[self.ctx.path] += 1
        if self._failure is not None:
            return  # a divert failed and ended the call: what the worker sent before it saw the END is dropped
        divert = self._divert
        if divert is not None and not self._in_hand and not self._queued and self._open and self._diverted(message):
            self._took(message)
            return
        try:
            self._inbox.send_nowait(message)
        except trio.ClosedResourceError:
            raise LinkError("a stream message after its HALF_CLOSE") from None
        self._queued += 1

    def _diverted(self, message: bytes) -> bool:
        """The divert's ``take(message)``. What it raises ends this call, as its handler's error would
        (failure_status), never the link, whose reader it runs in."""
        assert self._divert is not None
        try:
            return self._divert(message)
        except Exception as exc:
            self._failure = failure_status(self.ctx.path, exc)
            self._inbox.close()
            if self._scope is not None:
                self._scope.cancel()
            return True

    def grant(self, size: int) -> None:
        self._credit.granted(size)

    def half_close(self) -> None:
        self._open = False
        self._inbox.close()

    def cancel(self) -> None:
        """The worker's CANCEL: the handler stops at its next checkpoint and the call ends without a status."""
        self.cancelled = True
        self._open = False
        COUNTS.handled[self.ctx.path, StatusCode.CANCELLED] += 1  # the client gave up, as grpc-go counts it
        self._inbox.close()
        self._credit.close()
        if self._scope is not None:
            self._scope.cancel()

    # -- the call's task --------------------------------------------------------------------

    async def run(self, method: Method, end: Callable[[MemberStream, int, str], None]) -> None:
        """Runs ``method`` for the call, then hands its status to ``end`` (not for a call the worker cancelled)."""
        if self.cancelled:
            return
        code, text = StatusCode.OK, ""
        with trio.CancelScope(deadline=self.ctx.deadline if self.ctx.deadline is not None else math.inf) as scope:
            self._scope = scope
            try:
                await self._call(method)
            except Exception as exc:
                code, text = failure_status(self.ctx.path, exc)
        if self.cancelled:
            return
        if self._failure is not None:
            code, text = self._failure
        elif scope.cancelled_caught:
            code, text = _DEADLINE
        end(self, code, text)

    async def _call(self, method: Method) -> None:
        ctx = self.ctx
        if isinstance(method, BidiStreamMethod):
            await method.handler(MemberMessages(self), ctx, MemberSender(self))
            return
        try:
            first = await self._messages.receive()
        except trio.EndOfChannel:
            raise EtcdError(*_UNEXPECTED_EOF) from None
        self._queued -= 1
        self._took(first)
        if isinstance(method, ServerStreamMethod):
            await method.handler(first, ctx, self.send)
        else:
            await self.send(await await_unary(method, first, ctx))

    async def next_request(self) -> bytes:
        """The handler's next message (MemberMessages); EndOfChannel once the worker half-closed."""
        self._in_hand = False
        message = await self._messages.receive()
        self._queued -= 1
        self._took(message)
        self._in_hand = True
        return message

    def _took(self, message: bytes) -> None:
        """The handler took ``message``: its credit goes back to the worker (half a window at a time)."""
        grant = self._credit.consumed(len(message))
        if grant:
            self._socket.queue(encode_credit(self.call_id, grant))
            self._socket.flush_soon()

    async def send(self, message: bytes) -> None:
        """One message to the worker, once it has room (the client reads as fast as it sends)."""
        if not await self._credit.wait_to_send():
            await trio.lowlevel.checkpoint()  # cancelled: the scope ends the handler here
            return
        self._credit.sent(len(message))
        COUNTS.stream_sent[self.ctx.path] += 1
        self._socket.queue(encode_message(self.call_id, message))
        self._socket.flush_soon()

    def try_send_nowait(self, message: bytes) -> bool:
        """MemberSender.try_send_nowait: the message queued on the link if the stream's credit allows, for the
        flush of the link's read that is being handled; False (nothing sent) otherwise."""
        if not self._credit.may_send():
            return False
        self._credit.sent(len(message))
        COUNTS.stream_sent[self.ctx.path] += 1
        self._socket.queue(encode_message(self.call_id, message))
        return True


class MemberMessages:
    """A bidirectional handler's request messages on the link, as StreamMessages are on HTTP/2 (``async for``,
    and ``divert(take)``: from then on, a message that arrives while none waits before it and the handler holds
    none goes to ``take(message)`` from the link's reader, which handles it and returns True, or returns False
    and the message waits for the iterator as usual; what ``take`` sends through MemberSender.try_send_nowait
    leaves with the flush that ends the reader's handling of that read)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: MemberStream) -> None:
        self._stream = stream

    def divert(self, take: Callable[[bytes], bool]) -> None:
        self._stream._divert = take

    def __aiter__(self) -> MemberMessages:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._stream.next_request()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class MemberSender:
    """A streaming handler's ``send`` on the link, as StreamSender is on HTTP/2: ``await send(message)``, and
    ``try_send_nowait(message)`` for code outside the handler's task (it sends only if that needs no wait; the
    caller keeps the call's messages in order: none while an ``await send`` runs)."""

    __slots__ = ("_stream", "try_send_nowait")

    def __init__(self, stream: MemberStream) -> None:
        self._stream = stream
        self.try_send_nowait = stream.try_send_nowait

    async def __call__(self, message: bytes) -> None:
        await self._stream.send(message)

"""A read worker's end of the member link (link_frames.py): its calls to the member, many at once on one
connection. Unary calls cost no task; the streams (and the unary calls that may wait without bound) run as
link streams (link_stream.py) in their routes' tasks.

``call`` sends a request and hands the member's answer (the response bytes, or an EtcdError with the member's
code and text) to a ``reply`` callback, the DeferredUnaryMethod contract, so a relayed call costs the worker no
task: ``relay(path)`` is such a method. ``unary`` awaits the answer, for the worker's own calls (the barrier).
When the connection ends, every call waiting on it is answered UNAVAILABLE, and ``run`` connects again (the
member's listener outlives its connections); a call made while there is no connection is answered UNAVAILABLE
at once. A call's timeout is its client's remaining deadline, so the member ends it by then. ``open_stream``
opens a stream call.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from etcdx.errors import EtcdError, StatusCode
from etcdx.log import get_logger
from etcdx.net.grpc_server import (
    DeferredUnaryMethod,
    Reply,
    RpcContext,
    defer_output,
    flush_deferred_replies,
    withdraw_deferred_output,
)
from etcdx.proxy.forward import upstream_metadata
from etcdx.worker.link_frames import (
    ANSWER,
    CANCEL,
    CREDIT,
    END,
    MAX_TIMEOUT_MS,
    MESSAGE,
    NO_TIMEOUT,
    OPEN,
    RELAY_MARK,
    LinkError,
    decode_credit,
    decode_message,
    decode_response,
    encode_request,
    encode_signal,
    kind,
)
from etcdx.worker.link_socket import LinkSocket
from etcdx.worker.link_stream import LinkStream, status_code

log = get_logger("etcdx.worker")

RECONNECT_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)  # seconds before each new attempt; the last one repeats
_UNREACHABLE = f"{RELAY_MARK}the read worker lost its link to the member"


def link_path(socket_path: str) -> str:
    """The link's socket file, ``link.sock`` beside the member's private HTTP/2 socket ``socket_path`` (a name no
    longer than ``workers.sock``, so that the link adds nothing to how deep a data dir may be)."""
    return os.path.join(os.path.dirname(socket_path), "link.sock")


class MemberLink:
    def __init__(self, path: str, max_frame: int) -> None:
        self._path = path
        self._max_frame = max_frame
        self._socket: LinkSocket | None = None
        self._pending: dict[int, Reply] = {}
        self._streams: dict[int, LinkStream] = {}
        self._ids = itertools.count(1)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connects (reports started once connected the first time) and keeps connecting until cancelled."""
        delays = iter(())
        started = False
        while True:
            try:
                stream = await trio.open_unix_socket(self._path)
            except OSError as exc:
                delay = next(delays, RECONNECT_DELAYS[-1])
                log.warning("read worker: cannot reach the member link", error=str(exc), retry_in=delay)
                await trio.sleep(delay)
                continue
            delays = iter(RECONNECT_DELAYS)
            self._socket = LinkSocket(stream, self._max_frame)
            if not started:
                task_status.started()
                started = True
            try:
                await self._socket.run(self._on_frames)
            finally:
                withdraw_deferred_output(self)
                self._socket = None
                pending, self._pending = self._pending, {}
                for reply in pending.values():
                    reply(EtcdError(StatusCode.UNAVAILABLE, _UNREACHABLE))
                streams, self._streams = self._streams, {}
                for stream in streams.values():
                    stream.end(StatusCode.UNAVAILABLE, _UNREACHABLE)
                flush_deferred_replies()
            log.warning("read worker: the member link closed; connecting again")

    def call(
        self,
        path: str,
        message: bytes,
        metadata: dict[str, str],
        deadline: float | None,
        reply: Reply,
        batched: bool = False,
    ) -> None:
        """Sends one call; ``reply`` gets its outcome exactly once (never raises). A ``batched`` call is queued
        for the next flush_deferred_replies (the client connection's, once it has dispatched the requests of one
        read), so the calls of a read leave in one write; the link's writer sends it otherwise, at its next turn.
        """
        socket = self._socket
        if socket is None or socket.broken:
            reply(EtcdError(StatusCode.UNAVAILABLE, _UNREACHABLE))
            return
        call_id = self._new_id()
        self._pending[call_id] = reply
        socket.queue(encode_request(call_id, _timeout_ms(deadline), path, metadata, message))
        if batched:
            self._flush_later()
        else:
            socket.flush_now()

    def _new_id(self) -> int:
        """A call id no call in flight has (ids wrap around after 2**32 calls; a watch may outlive that)."""
        while True:
            call_id = next(self._ids) & 0xFFFFFFFF
            if call_id not in self._pending and call_id not in self._streams:
                return call_id

    def _flush_later(self) -> None:
        """Output queued outside a read of the link: it leaves at the next flush_deferred_replies, or with the
        link's writer at its next turn, whichever comes first."""
        socket = self._socket
        if socket is not None:
            defer_output(self)
            socket.flush_soon()

    def _flush_now(self) -> None:  # DeferredOutput
        socket = self._socket
        if socket is not None:
            socket.flush_now()

    async def unary(self, path: str, message: bytes, metadata: dict[str, str]) -> bytes:
        """One call, awaited: the response bytes, or the member's EtcdError raised."""
        done = trio.Event()
        outcome: list[bytes | EtcdError] = []

        def reply(result: bytes | EtcdError) -> None:
            outcome.append(result)
            done.set()

        self.call(path, message, metadata, None, reply)
        await done.wait()
        if isinstance(outcome[0], EtcdError):
            raise outcome[0]
        return outcome[0]

    @asynccontextmanager
    async def open_stream(
        self, path: str, metadata: dict[str, str], deadline: float | None
    ) -> AsyncIterator[LinkStream]:
        """A stream call to ``path`` (any method of the member's), open for the block; EtcdError UNAVAILABLE at
        once if there is no link. Leaving the block before the member ended the call cancels it there (unless
        ``deadline`` has passed: the member's own deadline ends it then)."""
        socket = self._socket
        if socket is None or socket.broken:
            raise EtcdError(StatusCode.UNAVAILABLE, _UNREACHABLE)
        call_id = self._new_id()
        stream = LinkStream(call_id, socket, self._flush_later)
        self._streams[call_id] = stream
        socket.queue(encode_request(call_id, _timeout_ms(deadline), path, metadata, b"", OPEN))
        socket.flush_now()
        try:
            yield stream
        finally:
            # Once the deadline has passed, the member ends the call by the same deadline (sent with OPEN, rounded
            # up to the millisecond) and counts it DEADLINE_EXCEEDED, as a direct call; else the client gave up.
            given_up = deadline is None or trio.current_time() < deadline
            if self._streams.pop(call_id, None) is not None and stream.status is None and given_up:
                socket.queue(encode_signal(CANCEL, call_id))
                socket.flush_soon()

    def relay(self, path: str) -> DeferredUnaryMethod:
        """A method that relays ``path`` to the member with the client's metadata and deadline."""

        def handler(data: bytes, ctx: RpcContext, reply: Reply) -> None:
            self.call(path, data, upstream_metadata(ctx), ctx.deadline, reply, batched=True)

        return DeferredUnaryMethod(handler)

    async def _on_frames(self, frames: list[bytes]) -> None:
        pending = self._pending
        streams = self._streams
        for frame in frames:
            frame_kind = kind(frame)
            if frame_kind == ANSWER:
                call_id, code, payload = decode_response(frame)
                reply = pending.pop(call_id, None)
                if reply is None:
                    continue  # cannot happen: the member answers each call once
                if code == StatusCode.OK:
                    reply(payload)
                else:
                    reply(EtcdError(status_code(code), payload.decode(errors="replace")))
            elif frame_kind == MESSAGE:
                call_id, message = decode_message(frame)
                stream = streams.get(call_id)
                if stream is not None:  # else cancelled here while the message was on its way
                    stream.deliver(message)
            elif frame_kind == END:
                call_id, code, payload = decode_response(frame)
                stream = streams.pop(call_id, None)
                if stream is not None:
                    stream.end(code, payload.decode(errors="replace"))
            elif frame_kind == CREDIT:
                call_id, size = decode_credit(frame)
                stream = streams.get(call_id)
                if stream is not None:
                    stream.grant(size)
            else:
                raise LinkError(f"a frame of kind {frame_kind} from the member")
        flush_deferred_replies()  # the answers of this read leave in one write per client connection


def _timeout_ms(deadline: float | None) -> int:
    """A call's timeout on the link: its client's remaining deadline."""
    if deadline is None:
        return NO_TIMEOUT
    left = (deadline - trio.current_time()) * 1000
    return min(MAX_TIMEOUT_MS, max(0, math.ceil(left)))

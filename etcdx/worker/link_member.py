"""The member's end of the member link (link_frames.py): serves its read workers' calls.

Each CALL frame is one unary call of the member's own method table (the private socket's resolver: the
client API plus the barrier), run as the HTTP/2 server runs it (net/grpc_server.py): an inline handler in the
reader, a deferred one handing its reply to whatever finishes the work (the apply of a proposal), any other in
a task of its own with the call's deadline. The worker sends its client's deadline as the frame's timeout; a
call whose deadline passes is answered DEADLINE_EXCEEDED, as on HTTP/2. A CALL carries no cancellation, so
workers send as CALLs only calls that end by themselves (worker/routes.py: not Lock or Election's Campaign).
Every other call is a stream (OPEN ... END, link_member_stream.py): any method of the table, in a task of its
own, which the worker's CANCEL ends; a path the table does not know ends UNIMPLEMENTED as on HTTP/2.
Calls are counted in the gRPC /metrics series as the member's own calls are. Replies queued in one read, or
in one batch of deferred work (flush_deferred_replies), leave in one write.
"""

from __future__ import annotations

import functools

import trio

from etcdx.errors import EtcdError, StatusCode
from etcdx.log import get_logger
from etcdx.net.grpc_metrics import COUNTS
from etcdx.net.grpc_server import (
    FORWARDED_CN,
    DeferredUnaryMethod,
    InlineUnaryMethod,
    Resolver,
    RpcContext,
    UnaryMethod,
    defer_output,
    failure_status,
    unimplemented_status,
    withdraw_deferred_output,
)
from etcdx.worker.link_frames import (
    CALL,
    CANCEL,
    CREDIT,
    END,
    HALF_CLOSE,
    MESSAGE,
    NO_TIMEOUT,
    OPEN,
    WORKER_PATHS,
    LinkError,
    decode_credit,
    decode_message,
    decode_request,
    decode_signal,
    encode_response,
    kind,
)
from etcdx.worker.link_member_stream import MemberStream
from etcdx.worker.link_socket import LinkSocket

log = get_logger("etcdx.worker")

OUTPUT_HIGH_WATER = 1024 * 1024  # queued reply bytes above which no more requests are read until they leave
_DEADLINE = (StatusCode.DEADLINE_EXCEEDED, b"context deadline exceeded")


async def serve_link(
    listener: trio.SocketListener, resolve: Resolver, known_services: frozenset[str], max_frame: int
) -> None:
    """Serves every worker connection on ``listener`` until cancelled. ``known_services`` as for the member's
    HTTP/2 server: what an unknown path's UNIMPLEMENTED text says."""

    async def serve(stream: trio.SocketStream) -> None:
        await _MemberEnd(stream, resolve, known_services, max_frame).run()

    await trio.serve_listeners(serve, [listener])


class _MemberEnd:
    def __init__(
        self, stream: trio.SocketStream, resolve: Resolver, known_services: frozenset[str], max_frame: int
    ) -> None:
        self._link = LinkSocket(stream, max_frame)
        self._resolve = resolve
        self._known_services = known_services
        self._nursery: trio.Nursery | None = None
        self._streams: dict[int, MemberStream] = {}

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._link.run(self._on_frames)
                nursery.cancel_scope.cancel()  # calls still running answer nobody
        finally:
            withdraw_deferred_output(self)
            for stream in self._streams.values():  # their clients are gone with the link, as grpc-go counts it
                COUNTS.handled[stream.ctx.path, StatusCode.CANCELLED] += 1
            self._streams.clear()

    def _flush_now(self) -> None:  # DeferredOutput
        self._link.flush_now()

    async def _on_frames(self, frames: list[bytes]) -> None:
        streams = self._streams
        for frame in frames:
            frame_kind = kind(frame)
            if frame_kind == CALL:
                self._dispatch(*decode_request(frame))
            elif frame_kind == MESSAGE:
                call_id, message = decode_message(frame)
                stream = streams.get(call_id)
                if stream is not None:  # else it ended here while the message was on its way
                    stream.deliver(message)
            elif frame_kind == OPEN:
                self._open(*decode_request(frame)[:4])
            elif frame_kind == CREDIT:
                call_id, size = decode_credit(frame)
                stream = streams.get(call_id)
                if stream is not None:
                    stream.grant(size)
            elif frame_kind in (HALF_CLOSE, CANCEL):
                stream = streams.get(decode_signal(frame))
                if stream is None:
                    continue
                if frame_kind == HALF_CLOSE:
                    stream.half_close()
                else:
                    del streams[stream.call_id]
                    stream.cancel()
            else:
                raise LinkError(f"a frame of kind {frame_kind} from a worker")
        self._link.flush_now()
        if self._link.backlog() > OUTPUT_HIGH_WATER:
            await self._link.room()

    def _dispatch(self, call_id: int, timeout_ms: int, path: str, metadata: dict[str, str], message: bytes) -> None:
        if path not in WORKER_PATHS:
            COUNTS.started[path, metadata.get("client-api-version", "unknown")] += 1
        deadline = None if timeout_ms == NO_TIMEOUT else trio.current_time() + timeout_ms / 1000
        ctx = RpcContext(path, metadata, deadline, metadata.pop(FORWARDED_CN, ""))  # only workers reach the link
        method = self._resolve(path)
        if timeout_ms == 0:
            self._answer(call_id, path, *_DEADLINE)
        elif isinstance(method, InlineUnaryMethod):
            try:
                self._answer(call_id, path, StatusCode.OK, method.handler(message, ctx))
            except Exception as exc:
                self._fail(call_id, path, exc)
        elif isinstance(method, DeferredUnaryMethod):
            reply = functools.partial(self._deferred_reply, call_id, path, deadline)
            try:
                at_once = method.handler(message, ctx, reply)
            except Exception as exc:
                self._fail(call_id, path, exc)
                return
            if at_once is not None:
                self._answer(call_id, path, StatusCode.OK, at_once)
        elif isinstance(method, UnaryMethod):
            assert self._nursery is not None
            self._nursery.start_soon(self._run_unary, call_id, method, message, ctx)
        else:
            text = f"etcdx: the member link serves unary methods only, not {path}"
            self._answer(call_id, path, StatusCode.UNIMPLEMENTED, text.encode())

    def _open(self, call_id: int, timeout_ms: int, path: str, metadata: dict[str, str]) -> None:
        if call_id in self._streams:
            raise LinkError(f"call id {call_id} opened twice")
        # A worker opens streams for its clients only: the worker calls are not theirs to make, and a path no
        # method serves is answered, not counted, as the member's HTTP/2 server answers it (so a client cannot
        # grow /metrics with made-up paths).
        method = None if path in WORKER_PATHS else self._resolve(path)
        if method is None:
            code, text = unimplemented_status(path, self._known_services)
            self._link.queue(encode_response(call_id, code, text.encode(), END))
            self._link.flush_soon()
            return
        COUNTS.started[path, metadata.get("client-api-version", "unknown")] += 1
        deadline = None if timeout_ms == NO_TIMEOUT else trio.current_time() + timeout_ms / 1000
        ctx = RpcContext(path, metadata, deadline, metadata.pop(FORWARDED_CN, ""))
        stream = MemberStream(call_id, ctx, self._link)
        self._streams[call_id] = stream
        assert self._nursery is not None
        self._nursery.start_soon(stream.run, method, self._end)

    def _end(self, stream: MemberStream, code: int, text: str) -> None:
        """A stream call's status: its last frame."""
        self._streams.pop(stream.call_id, None)
        COUNTS.handled[stream.ctx.path, code] += 1
        self._link.queue(encode_response(stream.call_id, code, text.encode(), END))
        self._link.flush_soon()

    async def _run_unary(self, call_id: int, method: UnaryMethod, message: bytes, ctx: RpcContext) -> None:
        with trio.move_on_at(ctx.deadline if ctx.deadline is not None else float("inf")) as scope:
            try:
                reply = await method.handler(message, ctx)
            except Exception as exc:
                self._fail(call_id, ctx.path, exc)
            else:
                self._answer(call_id, ctx.path, StatusCode.OK, reply)
        if scope.cancelled_caught:
            self._answer(call_id, ctx.path, *_DEADLINE)
        self._link.flush_now()

    def _deferred_reply(self, call_id: int, path: str, deadline: float | None, outcome: bytes | EtcdError) -> None:
        """A deferred call's ``reply``: runs in whatever task finished the work, so nothing may escape it."""
        if self._link.broken:
            return
        try:
            if deadline is not None and trio.current_time() >= deadline:
                self._answer(call_id, path, *_DEADLINE)
            elif isinstance(outcome, EtcdError):
                self._answer(call_id, path, outcome.code, outcome.message.encode())
            else:
                self._answer(call_id, path, StatusCode.OK, outcome)
            defer_output(self)
            self._link.flush_soon()
        except Exception:
            log.exception("member link: a deferred reply failed", method=path)

    def _fail(self, call_id: int, path: str, exc: Exception) -> None:
        code, text = failure_status(path, exc)
        self._answer(call_id, path, code, text.encode())

    def _answer(self, call_id: int, path: str, code: int, payload: bytes) -> None:
        if path not in WORKER_PATHS:
            COUNTS.handled[path, code] += 1
        self._link.queue(encode_response(call_id, code, payload))

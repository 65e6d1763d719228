"""The member's end of the member link (link_frames.py): serves its read workers' unary calls.

Each request frame is one unary call of the member's own method table (the private socket's resolver: the
client API plus the barrier), run as the HTTP/2 server runs it (net/grpc_server.py): an inline handler in the
reader, a deferred one handing its reply to whatever finishes the work (the apply of a proposal), any other in
a task of its own with the call's deadline. The worker sends its client's deadline as the frame's timeout; a
call whose deadline passes is answered DEADLINE_EXCEEDED, as on HTTP/2. The link carries no cancellation, so
workers send on it only calls that end by themselves (worker/routes.py: not Lock or Election's Campaign).
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
    withdraw_deferred_output,
)
from etcdx.worker.link_frames import NO_TIMEOUT, WORKER_PATHS, decode_request, encode_response
from etcdx.worker.link_socket import LinkSocket

log = get_logger("etcdx.worker")

OUTPUT_HIGH_WATER = 1024 * 1024  # queued reply bytes above which no more requests are read until they leave
_DEADLINE = (StatusCode.DEADLINE_EXCEEDED, b"context deadline exceeded")


async def serve_link(listener: trio.SocketListener, resolve: Resolver, max_frame: int) -> None:
    """Serves every worker connection on ``listener`` until cancelled."""

    async def serve(stream: trio.SocketStream) -> None:
        await _MemberEnd(stream, resolve, max_frame).run()

    await trio.serve_listeners(serve, [listener])


class _MemberEnd:
    def __init__(self, stream: trio.SocketStream, resolve: Resolver, max_frame: int) -> None:
        self._link = LinkSocket(stream, max_frame)
        self._resolve = resolve
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._link.run(self._on_frames)
                nursery.cancel_scope.cancel()  # calls still running answer nobody
        finally:
            withdraw_deferred_output(self)

    def _flush_now(self) -> None:  # DeferredOutput
        self._link.flush_now()

    async def _on_frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            self._dispatch(*decode_request(frame))
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

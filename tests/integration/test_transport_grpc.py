"""gRPC on the client-port transport, driven by grpcio's client (run in worker threads: it blocks).

The server is served in-process on 127.0.0.1, port 0, with echo handlers that know nothing of etcd.
"""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import trio

from etcdx.errors import EtcdError, StatusCode
from etcdx.net.grpc_server import (
    BidiStreamMethod,
    DeferredUnaryMethod,
    Reply,
    RpcContext,
    ServerStreamMethod,
    UnaryMethod,
)
from etcdx.net.http1 import HttpResponse
from etcdx.net.listener import serve_client_port

MAX_RECV = 2 * 1024 * 1024
CLIENT_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


class EchoService:
    """Handlers for /test.Echo/*; records what the transport did to them."""

    def __init__(self) -> None:
        self.started = threading.Event()  # set by a handler that waits to be cancelled
        self.cancelled = trio.Event()
        self.deferred_calls, self._deferred_queue = trio.open_memory_channel(100)
        self.held: list[Reply] = []  # deferred replies the test sends when it chooses
        self.held_arrived = threading.Event()

    def deferred(self, request: bytes, ctx: RpcContext, reply: Reply) -> None:
        """Refuses "refuse" at once; queues anything else for ``answer_deferred``, which replies from another
        task, as the server's apply does for a proposal."""
        if request == b"refuse":
            raise EtcdError(StatusCode.INVALID_ARGUMENT, "refused before any work")
        self.deferred_calls.send_nowait((request, reply))

    async def answer_deferred(self) -> None:
        """b"fail" -> an EtcdError; b"big:N" -> N bytes; b"hold" -> kept in ``held``; anything else echoed."""
        async for request, reply in self._deferred_queue:
            await trio.sleep(0.01)
            if request == b"fail":
                reply(EtcdError(StatusCode.FAILED_PRECONDITION, "failed after the work"))
            elif request.startswith(b"big:"):
                reply(bytes(range(256)) * (int(request[4:]) // 256))
            elif request == b"hold":
                self.held.append(reply)
                self.held_arrived.set()
            else:
                reply(request)

    async def unary(self, request: bytes, ctx: RpcContext) -> bytes:
        return request

    async def fail(self, request: bytes, ctx: RpcContext) -> bytes:
        code, text = json.loads(request)
        raise EtcdError(StatusCode(code), text)

    async def crash(self, request: bytes, ctx: RpcContext) -> bytes:
        raise ValueError("handler bug: " + request.decode())

    async def context(self, request: bytes, ctx: RpcContext) -> bytes:
        remaining = None if ctx.deadline is None else ctx.deadline - trio.current_time()
        return json.dumps({"path": ctx.path, "metadata": ctx.metadata, "remaining": remaining}).encode()

    async def big(self, request: bytes, ctx: RpcContext) -> bytes:
        return bytes(range(256)) * (int(request) // 256)

    async def wait_cancel(self, request: bytes, ctx: RpcContext) -> bytes:
        try:
            self.started.set()
            await trio.sleep_forever()
        finally:
            self.cancelled.set()

    async def count(self, request: bytes, ctx: RpcContext, send) -> None:
        for i in range(int(request)):
            await send(b"%d" % i)

    async def slow_count(self, request: bytes, ctx: RpcContext, send) -> None:
        for i in range(int(request)):
            await trio.sleep(0.1)
            await send(b"%d" % i)

    async def echo_stream(self, requests, ctx: RpcContext, send) -> None:
        async for message in requests:
            await send(message)

    async def divert_stream(self, requests, ctx: RpcContext, send) -> None:
        """Takes about half of the messages from the connection's reader (StreamMessages.divert, when it offers
        one) and the rest from the iterator, whose each message it holds over a checkpoint before taking the
        next; answers with the order it took them in and how many were diverted."""
        taken: list[bytes] = []
        diverted = 0
        rng = random.Random(5)

        def take(message: bytes) -> bool:
            nonlocal diverted
            if rng.random() < 0.5:
                return False
            taken.append(message)
            diverted += 1
            return True

        requests.divert(take)
        async for message in requests:
            await trio.sleep(0)
            taken.append(message)
        await send(json.dumps({"order": [m.decode() for m in taken], "diverted": diverted}).encode())

    async def hold_stream(self, requests, ctx: RpcContext, send) -> None:
        try:
            async for _ in requests:
                self.started.set()
        finally:
            self.cancelled.set()

    def resolve(self, path: str):
        return {
            "/test.Echo/Unary": UnaryMethod(self.unary),
            "/test.Echo/Fail": UnaryMethod(self.fail),
            "/test.Echo/Crash": UnaryMethod(self.crash),
            "/test.Echo/Context": UnaryMethod(self.context),
            "/test.Echo/Big": UnaryMethod(self.big),
            "/test.Echo/WaitCancel": UnaryMethod(self.wait_cancel),
            "/test.Echo/Deferred": DeferredUnaryMethod(self.deferred),
            "/test.Echo/Count": ServerStreamMethod(self.count),
            "/test.Echo/SlowCount": ServerStreamMethod(self.slow_count),
            "/test.Echo/EchoStream": BidiStreamMethod(self.echo_stream),
            "/test.Echo/HoldStream": BidiStreamMethod(self.hold_stream),
            "/test.Echo/DivertStream": BidiStreamMethod(self.divert_stream),
        }.get(path)


async def no_http(request) -> HttpResponse:
    return HttpResponse(404, [], b"")


@pytest.fixture
async def echo(nursery):
    service = EchoService()
    nursery.start_soon(service.answer_deferred)
    service.port = await nursery.start(
        lambda task_status: serve_client_port(
            "127.0.0.1",
            0,
            resolve=service.resolve,
            known_services=frozenset({"test.Echo"}),
            http_handler=no_http,
            max_recv_message_bytes=MAX_RECV,
            task_status=task_status,
        )
    )
    return service


def in_thread(port: int, work):
    """Runs work(channel) in a worker thread with a fresh grpcio channel to the server."""

    def run():
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CLIENT_OPTIONS) as channel:
            return work(channel)

    return trio.to_thread.run_sync(run)


def unary(channel: grpc.Channel, name: str):
    return channel.unary_unary(f"/test.Echo/{name}")


def status_of(call) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    raise AssertionError("the call succeeded")


async def test_unary_echo(echo):
    payloads = [b"", b"hello", bytes(range(256)) * 100]
    replies = await in_thread(echo.port, lambda ch: [unary(ch, "Unary")(p, timeout=10) for p in payloads])
    assert replies == payloads


async def test_metadata_and_deadline_reach_the_handler(echo):
    def work(ch):
        return unary(ch, "Context")(b"", timeout=30, metadata=[("token", "abc"), ("hasleader", "true")])

    seen = json.loads(await in_thread(echo.port, work))
    assert seen["path"] == "/test.Echo/Context"
    assert seen["metadata"]["token"] == "abc" and seen["metadata"]["hasleader"] == "true"
    assert not any(name.startswith((":", "grpc-")) or name in ("te", "content-type") for name in seen["metadata"])
    assert 0 < seen["remaining"] <= 30.5  # grpc-core rounds the grpc-timeout it sends up to a coarser unit
    no_deadline = json.loads(await in_thread(echo.port, lambda ch: unary(ch, "Context")(b"")))
    assert no_deadline["remaining"] is None


@pytest.mark.parametrize(
    "code,text",
    [
        (StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided"),
        (StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
        (StatusCode.UNAVAILABLE, "100% sure: ключ не найден ✓ (tab\there)"),
        (StatusCode.UNKNOWN, "%41 is not A, and %% stays"),
    ],
)
async def test_error_trailers_carry_code_and_exact_text(echo, code, text):
    request = json.dumps([int(code), text]).encode()
    got = await in_thread(echo.port, lambda ch: status_of(lambda: unary(ch, "Fail")(request, timeout=10)))
    assert got == (grpc.StatusCode(tuple(s for s in grpc.StatusCode if s.value[0] == code)[0]), text)


async def test_handler_crash_is_unknown_and_server_keeps_serving(echo):
    got = await in_thread(echo.port, lambda ch: status_of(lambda: unary(ch, "Crash")(b"oops", timeout=10)))
    assert got == (grpc.StatusCode.UNKNOWN, "handler bug: oops")
    assert await in_thread(echo.port, lambda ch: unary(ch, "Unary")(b"still here", timeout=10)) == b"still here"


async def test_deferred_unary_replies_from_another_task(echo):
    def work(ch):
        call = unary(ch, "Deferred")
        return [
            call(b"hello", timeout=10),
            call(b"big:3000000", timeout=10),  # more than the client's window: sent as the window opens
            status_of(lambda: call(b"fail", timeout=10)),
            status_of(lambda: call(b"refuse", timeout=10)),
        ]

    assert await in_thread(echo.port, work) == [
        b"hello",
        bytes(range(256)) * (3000000 // 256),
        (grpc.StatusCode.FAILED_PRECONDITION, "failed after the work"),
        (grpc.StatusCode.INVALID_ARGUMENT, "refused before any work"),
    ]


async def test_a_closed_connection_is_not_kept_for_a_flush_that_never_comes(echo):
    """Deferred replies register their connection for flush_deferred_replies; a process that never calls it (a
    read worker, this server) must not keep closed connections there: the set holds only live ones."""
    from etcdx.net import grpc_server

    for _ in range(5):
        assert await in_thread(echo.port, lambda ch: unary(ch, "Deferred")(b"hello", timeout=10)) == b"hello"
    with trio.fail_after(10):
        while grpc_server._DEFERRED_OUTPUT:  # each connection's run ends once its client closed it
            await trio.sleep(0.01)


async def test_deferred_reply_after_the_client_gave_up_is_dropped(echo):
    def work(ch):
        got = status_of(lambda: unary(ch, "Deferred")(b"hold", timeout=0.5))
        echo.held_arrived.wait(10)
        return got

    assert await in_thread(echo.port, work) == (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    echo.held.pop()(b"too late")  # its stream is gone (reset, or past its deadline): nothing is sent
    assert await in_thread(echo.port, lambda ch: unary(ch, "Deferred")(b"still here", timeout=10)) == b"still here"


async def test_unknown_service_and_method_texts_match_grpc_go(echo):
    def work(ch):
        return [
            status_of(lambda: ch.unary_unary("/test.Echo/Nope")(b"", timeout=10)),
            status_of(lambda: ch.unary_unary("/other.Service/Get")(b"", timeout=10)),
            status_of(lambda: ch.stream_stream("/test.Echo/NopeStream")(iter([b"a"]), timeout=10).__next__()),
        ]

    assert await in_thread(echo.port, work) == [
        (grpc.StatusCode.UNIMPLEMENTED, "unknown method Nope for service test.Echo"),
        (grpc.StatusCode.UNIMPLEMENTED, "unknown service other.Service"),
        (grpc.StatusCode.UNIMPLEMENTED, "unknown method NopeStream for service test.Echo"),
    ]


async def test_oversized_request_is_resource_exhausted(echo):
    size = MAX_RECV + 53258
    got = await in_thread(echo.port, lambda ch: status_of(lambda: unary(ch, "Unary")(b"x" * size, timeout=10)))
    assert got == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"grpc: received message larger than max ({size} vs. {MAX_RECV})",
    )
    assert await in_thread(echo.port, lambda ch: unary(ch, "Unary")(b"x" * MAX_RECV, timeout=10)) == b"x" * MAX_RECV


async def test_oversized_message_on_a_stream_ends_only_that_stream(echo):
    def work(ch):
        call = ch.stream_stream("/test.Echo/EchoStream")(iter([b"small", b"y" * (MAX_RECV + 1)]), timeout=10)
        first = next(call)
        return first, status_of(lambda: next(call))

    first, status = await in_thread(echo.port, work)
    assert first == b"small"
    assert status == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"grpc: received message larger than max ({MAX_RECV + 1} vs. {MAX_RECV})",
    )


@pytest.mark.parametrize("size", [4 * 1024 * 1024, 24 * 1024 * 1024])
async def test_large_responses_get_through_flow_control(echo, size):
    reply = await in_thread(echo.port, lambda ch: unary(ch, "Big")(b"%d" % size, timeout=60))
    assert reply == bytes(range(256)) * (size // 256)


async def test_server_stream(echo):
    replies = await in_thread(echo.port, lambda ch: list(ch.unary_stream("/test.Echo/Count")(b"500", timeout=30)))
    assert replies == [b"%d" % i for i in range(500)]


async def test_server_stream_without_messages_ends_ok(echo):
    replies = await in_thread(echo.port, lambda ch: list(ch.unary_stream("/test.Echo/Count")(b"0", timeout=10)))
    assert replies == []


async def test_bidi_stream_many_messages_both_ways(echo):
    requests = [b"%d:" % i + b"z" * (i % 3000) for i in range(3000)]

    def work(ch):
        return list(ch.stream_stream("/test.Echo/EchoStream")(iter(requests), timeout=60))

    assert await in_thread(echo.port, work) == requests


async def test_diverted_messages_keep_their_order_with_those_the_handler_takes(echo):
    """StreamMessages.divert: a message goes to the taker from the reader only when none waits before it and the
    handler holds none; whichever way each went, the handler's side sees them all once, in order."""
    requests = [b"%d" % i for i in range(3000)]

    def work(ch):
        return list(ch.stream_stream("/test.Echo/DivertStream")(iter(requests), timeout=60))

    (answer,) = await in_thread(echo.port, work)
    answer = json.loads(answer)
    assert answer["order"] == [r.decode() for r in requests]
    assert 0 < answer["diverted"] < len(requests)


async def test_deadline_expiry_cancels_the_handler(echo):
    got = await in_thread(echo.port, lambda ch: status_of(lambda: unary(ch, "WaitCancel")(b"", timeout=0.3)))
    assert got[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    with trio.fail_after(10):
        await echo.cancelled.wait()


async def test_client_cancel_cancels_the_handler(echo):
    def work(ch):
        future = unary(ch, "WaitCancel").future(b"", timeout=30)
        assert echo.started.wait(10)
        future.cancel()
        return future.cancelled()

    assert await in_thread(echo.port, work)
    with trio.fail_after(10):
        await echo.cancelled.wait()
    assert await in_thread(echo.port, lambda ch: unary(ch, "Unary")(b"next", timeout=10)) == b"next"


async def test_client_cancel_of_a_stream_cancels_its_handler(echo):
    def work(ch):
        requests = iter([b"one"])
        call = ch.stream_stream("/test.Echo/HoldStream")(requests, timeout=30)
        assert echo.started.wait(10)
        call.cancel()

    await in_thread(echo.port, work)
    with trio.fail_after(10):
        await echo.cancelled.wait()


async def test_a_hundred_concurrent_calls_on_one_connection_and_on_many(echo):
    def one_channel(ch):
        with ThreadPoolExecutor(16) as pool:
            futures = [unary(ch, "Unary").future(b"%d" % i, timeout=30) for i in range(100)]
            return [f.result() for f in futures], list(pool.map(lambda i: unary(ch, "Unary")(b"%d" % i), range(100)))

    shared, pooled = await in_thread(echo.port, one_channel)
    assert shared == pooled == [b"%d" % i for i in range(100)]

    async def own_channel(i: int, results: dict) -> None:
        results[i] = await in_thread(echo.port, lambda ch: unary(ch, "Unary")(b"%d" % i, timeout=30))

    results: dict[int, bytes] = {}
    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(own_channel, i, results)
    assert results == {i: b"%d" % i for i in range(20)}


async def test_client_keepalive_pings_do_not_disturb_calls(echo):
    options = [
        ("grpc.keepalive_time_ms", 50),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]

    def work():
        with grpc.insecure_channel(f"127.0.0.1:{echo.port}", options=options) as channel:
            streamed = list(channel.unary_stream("/test.Echo/SlowCount")(b"10", timeout=30))
            return streamed, unary(channel, "Unary")(b"after pings", timeout=10)

    assert await trio.to_thread.run_sync(work) == ([b"%d" % i for i in range(10)], b"after pings")

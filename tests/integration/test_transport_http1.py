"""HTTP/1.1 on the client port, beside gRPC on the same port: keep-alive, bodies, chunked streaming,
errors. Clients: http.client (in worker threads), raw sockets where the test must control the bytes."""

from __future__ import annotations

import http.client

import grpc
import pytest
import trio

from etcdx.net.grpc_server import UnaryMethod
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.net.listener import serve_client_port


class Site:
    def __init__(self) -> None:
        self.stream_closed = trio.Event()

    async def handle(self, request: HttpRequest) -> HttpResponse:
        if request.target == "/boom":
            raise RuntimeError("handler bug")
        if request.target.startswith("/stream"):
            count = int(request.target.rpartition("=")[2])
            return HttpResponse(200, [("content-type", "text/plain")], self.chunks(count))
        if request.target == "/forever":
            return HttpResponse(200, [], self.forever())
        summary = f"{request.method} {request.target} {len(request.body)} {dict(request.headers).get('x-test', '')}"
        return HttpResponse(200, [("content-type", "text/plain")], summary.encode() + b"\n" + request.body)

    async def chunks(self, count: int):
        for i in range(count):
            yield b"chunk %d\n" % i

    async def forever(self):
        try:
            yield b"first\n"
            await trio.sleep_forever()
        finally:
            self.stream_closed.set()

    async def grpc_echo(self, request: bytes, ctx) -> bytes:
        return request


@pytest.fixture
async def site(nursery):
    site = Site()
    site.port = await nursery.start(
        lambda task_status: serve_client_port(
            "127.0.0.1",
            0,
            resolve=lambda path: UnaryMethod(site.grpc_echo) if path == "/t.S/Echo" else None,
            known_services=frozenset({"t.S"}),
            http_handler=site.handle,
            max_recv_message_bytes=1024 * 1024,
            task_status=task_status,
        )
    )
    return site


def exchange(port: int, requests: list[tuple[str, str, bytes | None, dict]]) -> list[tuple[int, dict, bytes, int]]:
    """Sends the requests one after another on ONE connection; returns (status, headers, body, socket id)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        answers = []
        for method, target, body, headers in requests:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            headers = {name.lower(): value for name, value in response.getheaders()}
            answers.append((response.status, headers, response.read(), id(conn.sock)))
        return answers
    finally:
        conn.close()


async def test_get_post_and_keep_alive_on_one_connection(site):
    answers = await trio.to_thread.run_sync(
        exchange,
        site.port,
        [
            ("GET", "/version", None, {"X-Test": "one"}),
            ("POST", "/v3/kv/range", b'{"key": "Zm9v"}', {"Content-Type": "application/json"}),
            ("PUT", "/v2/keys/a?x=1", b"value=b" * 1000, {"X-Test": "three"}),
        ],
    )
    assert [a[0] for a in answers] == [200, 200, 200]
    assert answers[0][2] == b"GET /version 0 one\n"
    assert answers[1][2] == b'POST /v3/kv/range 15 \n{"key": "Zm9v"}'
    assert answers[2][2] == b"PUT /v2/keys/a?x=1 7000 three\n" + b"value=b" * 1000
    assert len({a[3] for a in answers}) == 1, "the three requests did not share one connection"


async def test_chunked_streaming_response(site):
    status, headers, body, _ = (
        await trio.to_thread.run_sync(exchange, site.port, [("GET", "/stream?n=50", None, {})])
    )[0]
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body == b"".join(b"chunk %d\n" % i for i in range(50))
    again = await trio.to_thread.run_sync(
        exchange, site.port, [("GET", "/stream?n=3", None, {}), ("GET", "/after", None, {})]
    )
    assert [a[2] for a in again] == [b"chunk 0\nchunk 1\nchunk 2\n", b"GET /after 0 \n"]


async def test_streaming_response_ends_when_the_client_goes(site):
    async with await trio.open_tcp_stream("127.0.0.1", site.port) as sock:
        await sock.send_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        with trio.fail_after(10):
            while b"first" not in received:
                received += await sock.receive_some(4096)
    with trio.fail_after(10):
        await site.stream_closed.wait()


async def test_handler_exception_is_500_and_the_connection_lives(site):
    answers = await trio.to_thread.run_sync(
        exchange, site.port, [("GET", "/boom", None, {}), ("GET", "/fine", None, {})]
    )
    assert [a[0] for a in answers] == [500, 200]


async def test_malformed_request_gets_400_then_close(site):
    async with await trio.open_tcp_stream("127.0.0.1", site.port) as sock:
        await sock.send_all(b"GET /x HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
        received = b""
        with trio.fail_after(10):
            while data := await sock.receive_some(4096):
                received += data
    assert received.startswith(b"HTTP/1.1 400 ")


async def test_expect_100_continue(site):
    async with await trio.open_tcp_stream("127.0.0.1", site.port) as sock:
        await sock.send_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        with trio.fail_after(10):
            interim = await sock.receive_some(4096)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await sock.send_all(b"data")
        received = b""
        with trio.fail_after(10):
            while b"POST /up 4" not in received:
                received += await sock.receive_some(4096)


async def test_grpc_and_http1_share_the_port(site):
    def both():
        with grpc.insecure_channel(f"127.0.0.1:{site.port}") as channel:
            reply = channel.unary_unary("/t.S/Echo")(b"over h2", timeout=10)
        return reply, exchange(site.port, [("GET", "/over-h1", None, {})])[0][2]

    assert await trio.to_thread.run_sync(both) == (b"over h2", b"GET /over-h1 0 \n")

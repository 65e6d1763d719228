"""The client-port transport under a hand-driven HTTP/2 peer (the `h2` library as client over a trio socket):
what grpcio will not do on purpose: garbage, disconnects mid-call, compressed flags, pings, shutdown."""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
import trio

from etcdx.net.grpc_server import BidiStreamMethod, UnaryMethod
from etcdx.net.http1 import HttpResponse
from etcdx.net.listener import serve_client_port

REQUEST_HEADERS = [
    (":method", "POST"),
    (":scheme", "http"),
    (":authority", "127.0.0.1"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
]


MAX_RECV = 8 * 1024 * 1024  # above the server's 4 MiB stream window on purpose


def frame(message: bytes, compressed: bool = False) -> bytes:
    return struct.pack(">BI", int(compressed), len(message)) + message


class Server:
    def __init__(self) -> None:
        self.started = trio.Event()
        self.cancelled = trio.Event()
        self.gate = trio.Event()

    async def echo(self, request: bytes, ctx) -> bytes:
        return request

    async def hold(self, requests, ctx, send) -> None:
        try:
            async for message in requests:
                await send(message)
                self.started.set()
        finally:
            self.cancelled.set()

    async def divert_bug(self, requests, ctx, send) -> None:
        """Its reader's ``take`` raises (a bug): that call must end, not the connection."""

        def take(message: bytes) -> bool:
            raise RuntimeError("a bug in take")

        requests.divert(take)
        try:
            async for _ in requests:
                pass
            await trio.sleep_forever()
        finally:
            self.cancelled.set()

    async def gated_echo(self, requests, ctx, send) -> None:
        await self.gate.wait()
        async for message in requests:
            await send(message)

    def resolve(self, path: str):
        return {
            "/t.S/Echo": UnaryMethod(self.echo),
            "/t.S/Hold": BidiStreamMethod(self.hold),
            "/t.S/GatedEcho": BidiStreamMethod(self.gated_echo),
            "/t.S/DivertBug": BidiStreamMethod(self.divert_bug),
        }.get(path)


async def no_http(request) -> HttpResponse:
    return HttpResponse(404, [], b"")


@pytest.fixture
async def server(nursery):
    service = Server()
    service.scope = trio.CancelScope()

    async def serve(task_status):
        with service.scope:
            await serve_client_port(
                "127.0.0.1",
                0,
                resolve=service.resolve,
                known_services=frozenset({"t.S"}),
                http_handler=no_http,
                max_recv_message_bytes=MAX_RECV,
                task_status=task_status,
            )

    service.port = await nursery.start(serve)
    return service


class Client:
    """A minimal HTTP/2 client: the test decides every frame."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()

    @classmethod
    async def connect(cls, port: int) -> Client:
        client = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await client.flush()
        return client

    async def flush(self) -> None:
        await self.stream.send_all(self.h2.data_to_send())

    async def start_call(self, path: str, extra_headers: tuple = ()) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, [*REQUEST_HEADERS[:2], (":path", path), *REQUEST_HEADERS[2:], *extra_headers])
        await self.flush()
        return stream_id

    async def events_until(self, done) -> list:
        """Reads until done(all events so far) holds; the connection ending also stops it."""
        seen: list = []
        with trio.fail_after(10):
            while not done(seen):
                data = await self.stream.receive_some(65536)
                if not data:
                    seen.append(None)
                    return seen
                seen.extend(self.h2.receive_data(data))
                for event in seen:
                    if isinstance(event, h2.events.DataReceived):
                        self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                await self.flush()
        return seen

    async def call_status(self, stream_id: int) -> dict[str, str]:
        """The trailers of ``stream_id`` (a trailers-only response counts)."""
        events = await self.events_until(lambda seen: any(_ended(e, stream_id) for e in seen))
        for event in events:
            if (
                isinstance(event, (h2.events.TrailersReceived, h2.events.ResponseReceived))
                and event.stream_id == stream_id
            ):
                headers = dict(event.headers)
                if "grpc-status" in headers:
                    return headers
        raise AssertionError(f"no status in {events}")


def _ended(event, stream_id: int) -> bool:
    return isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id


async def unary_call(port: int, message: bytes) -> bytes:
    client = await Client.connect(port)
    async with client.stream:
        sid = await client.start_call("/t.S/Echo")
        client.h2.send_data(sid, frame(message), end_stream=True)
        await client.flush()
        events = await client.events_until(lambda seen: any(_ended(e, sid) for e in seen))
        return b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))[5:]


async def test_garbage_closes_only_that_connection(server):
    bystander = await Client.connect(server.port)
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as bad:
        await bad.send_all(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not http at all \x00\xff\r\n\r\n")
        with trio.fail_after(10):
            while await bad.receive_some(65536):
                pass
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as broken_h2:
        await broken_h2.send_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64)
        with trio.fail_after(10):
            while await broken_h2.receive_some(65536):
                pass
    sid = await bystander.start_call("/t.S/Echo")
    bystander.h2.send_data(sid, frame(b"still fine"), end_stream=True)
    await bystander.flush()
    assert (await bystander.call_status(sid))["grpc-status"] == "0"
    await bystander.stream.aclose()
    assert await unary_call(server.port, b"new client") == b"new client"


async def test_client_disconnect_mid_call_cancels_its_handler(server):
    client = await Client.connect(server.port)
    sid = await client.start_call("/t.S/Hold")
    client.h2.send_data(sid, frame(b"first") + frame(b"second, cut")[:9])
    await client.flush()
    with trio.fail_after(10):
        await server.started.wait()
    await client.stream.aclose()
    with trio.fail_after(10):
        await server.cancelled.wait()
    assert await unary_call(server.port, b"after") == b"after"


async def test_client_disconnect_before_a_unary_request_completes(server):
    client = await Client.connect(server.port)
    sid = await client.start_call("/t.S/Echo")
    client.h2.send_data(sid, frame(b"x" * 1000)[:500])
    await client.flush()
    await client.stream.aclose()
    assert await unary_call(server.port, b"after") == b"after"


async def unary_status(port: int, body: bytes) -> tuple[dict[str, str], bytes]:
    """Sends ``body`` as the whole request of a unary call; returns its status and response DATA."""
    client = await Client.connect(port)
    async with client.stream:
        sid = await client.start_call("/t.S/Echo")
        client.h2.send_data(sid, body, end_stream=True)
        await client.flush()
        events = await client.events_until(lambda seen: any(_ended(e, sid) for e in seen))
    data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    for event in events:
        if isinstance(event, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
            headers = dict(event.headers)
            if "grpc-status" in headers:
                return headers, data
    raise AssertionError(f"no status in {events}")


# The texts and codes below are what etcd 3.5.1 answers to the same bytes.


async def test_compressed_message_without_encoding_is_internal(server):
    status, _ = await unary_status(server.port, frame(b"zzz", compressed=True))
    assert (status["grpc-status"], status["grpc-message"]) == (
        "13",
        "grpc: compressed flag set with identity or empty encoding",
    )


async def test_unary_request_cut_inside_its_message_is_unexpected_eof(server):
    status, _ = await unary_status(server.port, frame(b"x" * 10)[:7])
    assert (status["grpc-status"], status["grpc-message"]) == ("2", "unexpected EOF")


async def test_unary_call_answers_its_first_message_and_ignores_more(server):
    status, data = await unary_status(server.port, frame(b"one") + frame(b"two"))
    assert status["grpc-status"] == "0" and data == frame(b"one")


async def test_ping_is_acknowledged(server):
    client = await Client.connect(server.port)
    async with client.stream:
        client.h2.ping(b"12345678")
        await client.flush()
        events = await client.events_until(lambda seen: any(isinstance(e, h2.events.PingAckReceived) for e in seen))
    assert [e.ping_data for e in events if isinstance(e, h2.events.PingAckReceived)] == [b"12345678"]


async def test_server_opens_its_receive_window_generously(server):
    client = await Client.connect(server.port)
    async with client.stream:
        await client.events_until(lambda seen: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in seen))
        await client.events_until(lambda seen: client.h2.outbound_flow_control_window > 1024 * 1024)
        assert client.h2.remote_settings.initial_window_size >= 1024 * 1024


async def test_shutdown_sends_goaway(server):
    client = await Client.connect(server.port)
    async with client.stream:
        await client.events_until(lambda seen: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in seen))
        server.scope.cancel()
        events = await client.events_until(
            lambda seen: any(isinstance(e, h2.events.ConnectionTerminated) for e in seen)
        )
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events)


async def send_and_collect(client: Client, sid: int, payload: bytes, on_stall) -> bytes:
    """Sends ``payload`` on ``sid`` as the windows allow, then half-closes; returns the DATA received.
    on_stall(bytes sent so far) runs once, the first time the send window stays exhausted after a PING round trip (so
    every acknowledgement the server made for what it had received has arrived)."""
    view, received, stalled = memoryview(payload), bytearray(), False

    def collect(events) -> None:
        received.extend(
            b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == sid)
        )

    while view:
        size = min(client.h2.local_flow_control_window(sid), client.h2.max_outbound_frame_size, len(view))
        if size:
            client.h2.send_data(sid, view[:size].tobytes())
            view = view[size:]
            await client.flush()
            continue
        client.h2.ping(b"syncsync")
        await client.flush()
        collect(await client.events_until(lambda seen: any(isinstance(e, h2.events.PingAckReceived) for e in seen)))
        if client.h2.local_flow_control_window(sid) == 0:
            if not stalled:
                stalled = True
                await on_stall(len(payload) - len(view))
            collect(await client.events_until(lambda seen: bool(seen)))
    client.h2.end_stream(sid)
    await client.flush()
    collect(await client.events_until(lambda seen: any(_ended(e, sid) for e in seen)))
    return bytes(received)


async def test_stream_back_pressure_bounds_what_the_server_buffers(server):
    messages = [frame(bytes([i % 256]) * 65536) for i in range(160)]  # 10 MiB
    payload = b"".join(messages)
    client = await Client.connect(server.port)

    stalls = []

    async def release(sent: int) -> None:
        stalls.append(sent)
        server.gate.set()

    async with client.stream:
        sid = await client.start_call("/t.S/GatedEcho")
        received = await send_and_collect(client, sid, payload, release)
    assert received == payload
    # Held back: the 1 MiB backlog, at most one 4 MiB stream window, one partial message.
    assert len(stalls) == 1 and stalls[0] <= 6 * 1024 * 1024


async def test_stream_message_larger_than_the_stream_window(server):
    server.gate.set()
    payload = frame(b"m" * (6 * 1024 * 1024)) + frame(b"tail")
    client = await Client.connect(server.port)

    async def no_stall_expected(sent: int) -> None:
        raise AssertionError("the server stopped acknowledging a message it was still receiving")

    async with client.stream:
        sid = await client.start_call("/t.S/GatedEcho")
        assert await send_and_collect(client, sid, payload, no_stall_expected) == payload


async def test_grpc_timeout_ends_the_call_with_grpc_gos_deadline_status(server):
    client = await Client.connect(server.port)
    async with client.stream:
        sid = await client.start_call("/t.S/Hold", extra_headers=[("grpc-timeout", "200m")])
        client.h2.send_data(sid, frame(b"wait"))
        await client.flush()
        status = await client.call_status(sid)
    assert (status["grpc-status"], status["grpc-message"]) == ("4", "context deadline exceeded")
    assert server.cancelled.is_set()


@pytest.mark.parametrize("method,content_type", [("POST", "text/plain"), ("POST", None), ("GET", "application/grpc")])
async def test_a_request_that_is_not_grpc_is_reset_with_protocol_error(server, method, content_type):
    client = await Client.connect(server.port)
    async with client.stream:
        headers = [(":method", method), (":scheme", "http"), (":path", "/t.S/Echo"), (":authority", "x")]
        if content_type is not None:
            headers.append(("content-type", content_type))
        client.h2.send_headers(1, headers, end_stream=True)
        await client.flush()
        events = await client.events_until(lambda seen: any(isinstance(e, h2.events.StreamReset) for e in seen))
    [reset] = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR


async def test_unknown_method_reset_in_the_same_read_costs_only_that_stream(server):
    """A client that calls an unknown method and resets the stream in one write: the server has no stream left
    to answer UNIMPLEMENTED on, and the connection goes on serving the next call."""
    client = await Client.connect(server.port)
    async with client.stream:
        sid = client.h2.get_next_available_stream_id()
        client.h2.send_headers(sid, [*REQUEST_HEADERS[:2], (":path", "/t.S/Missing"), *REQUEST_HEADERS[2:]])
        client.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        await client.flush()
        echo = await client.start_call("/t.S/Echo")
        client.h2.send_data(echo, frame(b"still here"), end_stream=True)
        await client.flush()
        events = await client.events_until(lambda seen: None in seen or any(_ended(e, echo) for e in seen))
        assert None not in events, "the server closed the connection"
        assert b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))[5:] == b"still here"


@pytest.mark.parametrize("calls", [40, 400])
async def test_more_calls_in_one_read_than_the_hub_takes_at_once_are_all_answered(server, calls):
    """After its first read a connection waits at the port's read hub, which dispatches at most a batch of a
    read's calls itself (40 calls: about 1.5 KiB, one feed slice) and feeds a large read's slices only while each
    makes few events (400 calls: about 15 KiB of small frames), leaving the rest to the connection's task: every
    call of the one write is answered."""
    client = await Client.connect(server.port)
    async with client.stream:
        first = await client.start_call("/t.S/Echo")
        client.h2.send_data(first, frame(b"first"), end_stream=True)
        await client.flush()
        await client.events_until(lambda seen: any(_ended(e, first) for e in seen))
        sids = []
        for n in range(calls):
            sid = client.h2.get_next_available_stream_id()
            client.h2.send_headers(sid, [*REQUEST_HEADERS[:2], (":path", "/t.S/Echo"), *REQUEST_HEADERS[2:]])
            client.h2.send_data(sid, frame(b"call %d" % n), end_stream=True)
            sids.append(sid)
        await client.flush()  # one write: the server most likely reads it at once
        events = await client.events_until(lambda seen: all(any(_ended(e, sid) for e in seen) for sid in sids))
        answers = {sid: b"" for sid in sids}
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                answers[event.stream_id] += event.data
        assert [answers[sid][5:] for sid in sids] == [b"call %d" % n for n in range(calls)]


async def test_large_and_small_requests_on_one_connection_are_answered_in_full(server):
    """A large request (its read fed in slices) between small ones, on one connection waiting at the read hub."""
    client = await Client.connect(server.port)
    async with client.stream:
        for n in range(6):
            message = bytes([n]) * (50_000 if n % 2 else 10)  # within the initial stream window
            sid = await client.start_call("/t.S/Echo")
            framed = frame(message)
            for start in range(0, len(framed), 16_000):
                client.h2.send_data(sid, framed[start : start + 16_000], end_stream=start + 16_000 >= len(framed))
            await client.flush()
            events = await client.events_until(lambda seen, sid=sid: any(_ended(e, sid) for e in seen))
            assert b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))[5:] == message


async def test_a_divert_that_raises_ends_its_call_not_the_connection(server):
    """What a reader's ``take`` (StreamMessages.divert) raises ends that call as its handler's error would
    (UNKNOWN, the error's text), its handler cancelled; the connection and its other calls go on."""
    client = await Client.connect(server.port)
    async with client.stream:
        sid = await client.start_call("/t.S/DivertBug")
        await trio.sleep(0.05)  # the handler has set its divert and asked for a message
        client.h2.send_data(sid, frame(b"boom"))
        await client.flush()
        status = await client.call_status(sid)
        assert (status["grpc-status"], status.get("grpc-message")) == ("2", "a bug in take")
        with trio.fail_after(5):
            await server.cancelled.wait()
        echo = await client.start_call("/t.S/Echo")
        client.h2.send_data(echo, frame(b"still here"), end_stream=True)
        await client.flush()
        events = await client.events_until(lambda seen: any(_ended(e, echo) for e in seen))
        data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == echo)
        assert data[5:] == b"still here"

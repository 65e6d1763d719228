"""The native bench client's HTTP/2 connection and channel against a gRPC server built on the `h2` library
(which raises on any flow-control or protocol breach by the client): concurrency limits, flow control
both ways, statuses, resets, PING, GOAWAY, streaming, CONTINUATION and padding, reconnection."""

from __future__ import annotations

import asyncio
import hashlib

import h2.errors
import h2.settings

from etcdx.cli.bench.h2channel import Channel, connect
from etcdx.cli.bench.tls import Endpoint
from tests.support.h2_grpc_server import GrpcTestServer, grpc_message, serve

PATH = b"/test.Service/Method"


def run(scenario):
    return asyncio.run(asyncio.wait_for(scenario(), 30))


async def call(target, message: bytes, path: bytes = PATH) -> tuple[str | None, bytes]:
    done = asyncio.get_running_loop().create_future()
    target.unary(path, message, lambda error, body: done.set_result((error, body)))
    return await done


async def until(condition) -> None:
    """Waits for something the server will see (bounded by ``run``'s timeout)."""
    while not condition():
        await asyncio.sleep(0.001)


def endpoint(port: int) -> Endpoint:
    return Endpoint("127.0.0.1", port, False)


def echo(server: GrpcTestServer, stream_id: int, path: bytes, body: bytes) -> None:
    server.respond(stream_id, [body[5:]])


def later(server: GrpcTestServer, delay: float, action) -> None:
    def go() -> None:
        action()
        server.flush()

    asyncio.get_running_loop().call_later(delay, go)


def test_many_calls_share_a_connection_within_the_servers_max_concurrent_streams():
    servers = []

    def slow_echo(server, stream_id, path, body):
        later(server, 0.002, lambda: server.respond(stream_id, [body[5:][::-1]]))

    async def scenario():
        def factory():
            servers.append(GrpcTestServer(slow_echo, {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 5}))
            return servers[-1]

        listener, port = await serve(factory)
        connection = await connect(endpoint(port), None)
        results = await asyncio.gather(*(call(connection, b"message %d" % n) for n in range(60)))
        connection.close()
        listener.close()
        return results

    results = run(scenario)
    assert results == [(None, grpc_message(b"message %d" % n)[:5] + (b"message %d" % n)[::-1]) for n in range(60)]
    assert len(servers) == 1 and 1 < servers[0].most_open <= 5


def test_large_messages_both_ways_respect_the_flow_control_windows():
    big_request = bytes(range(256)) * 1200  # 307,200 bytes against a 1,000-byte stream window
    servers = []

    def digest(server, stream_id, path, body):
        assert body[5:] == big_request
        server.respond(stream_id, [hashlib.sha256(body[5:]).digest() * 10_000])  # 320 kB back

    async def scenario():
        def factory():
            servers.append(GrpcTestServer(digest, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000}))
            return servers[-1]

        listener, port = await serve(factory)
        connection = await connect(endpoint(port), None)
        results = await asyncio.gather(call(connection, big_request), call(connection, big_request))
        connection.close()
        listener.close()
        return results

    expected = hashlib.sha256(big_request).digest() * 10_000
    assert run(scenario) == [(None, grpc_message(expected))] * 2
    assert servers[0].window_updates > 0  # the client waited for the windows to open


def test_statuses_become_report_labels():
    def answer(server, stream_id, path, body):
        kind = body[5:]
        if kind == b"ok":
            server.respond(stream_id, [b"fine"])
        elif kind == b"invalid":
            server.respond(stream_id, [], status=3, message="etcdserver: bad key %E2%9C%93 100%25")
        elif kind == b"trailers-only":
            server.trailers_only(stream_id, 5, "etcdserver: not found")
        elif kind == b"refused":
            server.reset(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
        elif kind == b"internal":
            server.reset(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif kind == b"http-503":
            server.conn.send_headers(stream_id, [(b":status", b"503")], end_stream=True)
        elif kind == b"no-trailers":
            server.conn.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
            server.conn.send_data(stream_id, grpc_message(b"x"), end_stream=True)

    async def scenario():
        listener, port = await serve(lambda: GrpcTestServer(answer))
        connection = await connect(endpoint(port), None)
        kinds = [b"ok", b"invalid", b"trailers-only", b"refused", b"internal", b"http-503", b"no-trailers"]
        results = [(await call(connection, kind))[0] for kind in kinds]
        connection.close()
        listener.close()
        return results

    assert run(scenario) == [
        None,
        "INVALID_ARGUMENT: etcdserver: bad key ✓ 100%",
        "NOT_FOUND: etcdserver: not found",
        "UNAVAILABLE: stream refused by the server (REFUSED_STREAM)",
        "INTERNAL: stream reset by the server (INTERNAL_ERROR)",
        "UNAVAILABLE: unexpected HTTP status 503",
        "INTERNAL: server closed the stream without sending trailers",
    ]


def test_pings_are_acked_and_large_padded_frames_and_continuations_are_read():
    servers = []
    long_message = "m" * 30_000  # more than one 16 kB frame: HEADERS + CONTINUATION

    def answer(server, stream_id, path, body):
        server.conn.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        server.send_data(stream_id, grpc_message(b"padded"), pad_length=17)
        server.finish(stream_id, 9, long_message)

    async def scenario():
        def factory():
            servers.append(GrpcTestServer(answer))
            return servers[-1]

        listener, port = await serve(factory)
        connection = await connect(endpoint(port), None)
        servers[0].conn.ping(b"12345678")
        servers[0].flush()
        result = await call(connection, b"x")
        connection.close()
        listener.close()
        return result

    assert run(scenario) == (f"FAILED_PRECONDITION: {long_message}", grpc_message(b"padded"))
    assert servers[0].ping_acks == 1


def test_goaway_fails_the_calls_above_its_last_stream_and_no_new_call_starts():
    unusable = []

    def answer(server, stream_id, path, body):
        if stream_id == 7:  # all four requests are in: GOAWAY(last stream 3), then 1 and 3 finish
            server.flush()
            server.transport.write(b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + (3).to_bytes(4, "big") + bytes(4))
            for done in (1, 3):
                server.respond(done, [b"done %d" % done])

    async def scenario():
        listener, port = await serve(lambda: GrpcTestServer(answer))
        connection = await connect(endpoint(port), None, unusable.append)
        results = await asyncio.gather(*(call(connection, b"%d" % n) for n in range(4)))
        after = await call(connection, b"late")
        listener.close()
        return connection, results, after

    connection, results, after = run(scenario)
    assert [body for _, body in results[:2]] == [grpc_message(b"done 1"), grpc_message(b"done 3")]
    assert [error for error, _ in results] == [None, None] + ["UNAVAILABLE: GOAWAY from the server (NO_ERROR)"] * 2
    assert after[0] == "UNAVAILABLE: GOAWAY from the server (NO_ERROR)"
    assert unusable == [connection]


def test_a_streaming_call_delivers_messages_split_and_joined_across_frames():
    servers = []

    def on_data(server, stream_id, data):
        # for each request message: the first reply cut in two frames, then two replies in one frame
        reply = grpc_message(b"reply to " + bytes(data[5:]))
        server.send_data(stream_id, reply[:3])
        server.send_data(stream_id, reply[3:], pad_length=4)
        server.send_data(stream_id, grpc_message(b"second") + grpc_message(b""))

    async def scenario():
        def factory():
            servers.append(GrpcTestServer(lambda *args: None, on_stream_data=on_data))
            return servers[-1]

        listener, port = await serve(factory)
        connection = await connect(endpoint(port), None)
        received: list[bytes] = []
        ended: list = []
        three = asyncio.get_running_loop().create_future()

        def on_message(message: bytes) -> None:
            received.append(message)
            if len(received) == 6:
                three.set_result(None)

        stream = connection.open_stream(PATH, on_message, lambda error, body: ended.append(error))
        connection.send(stream, b"one")
        connection.send(stream, b"two")
        await three
        connection.cancel(stream)
        await until(lambda: not servers[0].open_streams)
        connection.close()
        listener.close()
        return received, ended

    received, ended = run(scenario)
    assert received == [b"reply to one", b"second", b"", b"reply to two", b"second", b""]
    assert ended == []  # cancelled by us: no completion callback (and the server saw the RST_STREAM)


def test_a_frame_for_a_stream_never_opened_is_a_connection_error():
    servers = []

    def answer(server, stream_id, path, body):
        server.transport.write(b"\x00\x00\x01\x00\x00\x00\x00\x00\x63x")  # DATA on stream 99

    async def scenario():
        def factory():
            servers.append(GrpcTestServer(answer))
            return servers[-1]

        listener, port = await serve(factory)
        connection = await connect(endpoint(port), None)
        result = await call(connection, b"x")
        await until(lambda: servers[0].goaways)
        listener.close()
        return result

    error, _ = run(scenario)
    assert error.startswith("UNAVAILABLE: HTTP/2 connection error (PROTOCOL_ERROR)")
    assert [event.error_code for event in servers[0].goaways] == [h2.errors.ErrorCodes.PROTOCOL_ERROR]


class HangUp(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        transport.close()


def test_a_channel_replaces_a_closing_connection_and_fails_fast_while_none_can_be_made():
    def close_after_answer(server, stream_id, path, body):  # GOAWAY first, as servers shutting down do
        server.transport.write(b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + stream_id.to_bytes(4, "big") + bytes(4))
        server.respond(stream_id, [b"answer"])
        server.flush()
        server.transport.close()

    async def scenario():
        accepted = []

        def factory():  # three connections answer one call each; later ones are hung up on
            accepted.append(None)
            return GrpcTestServer(close_after_answer) if len(accepted) <= 3 else HangUp()

        listener, port = await serve(factory)
        channel = Channel(endpoint(port), None)
        await channel.open()
        answers = [await call(channel, b"x") for _ in range(3)]  # a new connection for each
        await until(lambda: channel.failure is not None)
        refused = await call(channel, b"x")
        channel.close()
        listener.close()
        return answers, refused

    answers, refused = run(scenario)
    assert answers == [(None, grpc_message(b"answer"))] * 3
    assert refused[0].startswith("UNAVAILABLE: failed to connect to 127.0.0.1:")


def test_a_closed_connection_refuses_new_calls_with_its_reason():
    async def scenario():
        listener, port = await serve(lambda: GrpcTestServer(echo))
        connection = await connect(endpoint(port), None)
        ok = await call(connection, b"fine")
        connection.close()
        refused = await call(connection, b"x")
        listener.close()
        return ok, refused

    assert run(scenario) == ((None, grpc_message(b"fine")), ("UNAVAILABLE: connection closed by the client", b""))

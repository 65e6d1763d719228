"""Gateway streams end with their client: a watch answered through the /v3 gateway runs in the gateway's nursery
until its body is closed, whether the body was read or not (net/http1.py closes a body whose headers it could
not send). In process, on a real member (LMDB and WAL in tmp_path)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from etcdx.api.grpc.router import build_resolver
from etcdx.api.http.gateway import Gateway
from etcdx.cli.main import settings_from_config
from etcdx.config import parse_config
from etcdx.net import http1
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.server.server import EtcdServer

WATCH = HttpRequest("POST", "/v3/watch", [], b'{"create_request":{"key":"Zm9v"}}')


async def _with_gateway(tmp_path, check) -> None:
    server = EtcdServer(settings_from_config(parse_config(["--data-dir", str(tmp_path / "data")], {})))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run)
        await server.wait_started()
        resolve, _ = build_resolver(server)
        gateway = Gateway(resolve, 2 * 1024 * 1024)
        async with trio.open_nursery() as gateway_nursery:
            await gateway_nursery.start(gateway.run)
            [gateway_scope] = gateway_nursery.child_tasks
            await check(gateway, gateway_scope)
            gateway_nursery.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


def _running(gateway_task: trio.lowlevel.Task) -> int:
    return sum(len(child.child_tasks) for child in gateway_task.child_nurseries)


async def test_a_watch_body_read_then_closed_ends_its_call(tmp_path):
    async def check(gateway: Gateway, task) -> None:
        response = await gateway(WATCH, "/v3/watch")
        assert response.status == 200
        first = await response.body.__anext__()
        assert b'"created":true' in first
        assert _running(task) == 1
        await response.body.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert _running(task) == 0

    await _with_gateway(tmp_path, check)


async def test_a_watch_whose_headers_cannot_be_sent_ends_its_call(tmp_path):
    class Gone(trio.abc.Stream):
        async def send_all(self, data) -> None:
            raise trio.BrokenResourceError("the client went")

        async def wait_send_all_might_not_block(self) -> None: ...

        async def receive_some(self, max_bytes=None) -> bytes:
            return b""

        async def aclose(self) -> None: ...

    async def check(gateway: Gateway, task) -> None:
        response: HttpResponse = await gateway(WATCH, "/v3/watch")
        assert _running(task) == 1
        conn = http1.h11.Connection(http1.h11.SERVER)
        conn.receive_data(b"POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        conn.next_event()
        with pytest.raises(trio.BrokenResourceError):
            await http1._respond(Gone(), conn, response)
        await trio.testing.wait_all_tasks_blocked()
        assert _running(task) == 0

    await _with_gateway(tmp_path, check)

"""--listen-metrics-urls: extra listeners that serve only /metrics and /health, as etcd's metrics listeners do
(plain HTTP, or HTTPS with the client TLS settings). No access control, gateway, v2 API or gRPC on them."""

from __future__ import annotations

from email.utils import formatdate

import trio

from etcdx.api.http.endpoints import HttpEndpoints
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.net.listener import ListenAddress, serve_client_port
from etcdx.server.server import EtcdServer

_NOT_FOUND = HttpResponse(
    404,
    [("content-type", "text/plain; charset=utf-8"), ("x-content-type-options", "nosniff")],
    b"404 page not found\n",
)
_METHOD_NOT_ALLOWED = HttpResponse(
    405,
    [("content-type", "text/plain; charset=utf-8"), ("allow", "GET"), ("x-content-type-options", "nosniff")],
    b"Method Not Allowed\n",
)


class MetricsPortHandler:
    """The HttpHandler of a metrics URL: /metrics (any method, as promhttp) and /health (GET)."""

    def __init__(self, server: EtcdServer, *, secure: bool) -> None:
        self._endpoints = HttpEndpoints(server, secure=secure)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.target.split("?", 1)[0]
        if path == "/metrics":
            response = self._endpoints.metrics(request)
        elif path == "/health":
            response = self._endpoints.health(request) if request.method == "GET" else _METHOD_NOT_ALLOWED
        else:
            response = _NOT_FOUND
        return HttpResponse(response.status, [*response.headers, ("date", formatdate(usegmt=True))], response.body)

    @staticmethod
    def body_limit(method: str, target: str) -> int | None:
        return None  # neither path reads a body


async def serve_metrics_ports(
    server: EtcdServer,
    addresses: list[ListenAddress],
    *,
    task_status: trio.TaskStatus[list[int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serves every metrics address until cancelled; reports the bound ports once all listen."""
    async with trio.open_nursery() as nursery:
        ports = []
        for address in addresses:
            handler = MetricsPortHandler(server, secure=address.tls is not None)
            ports.append(
                await nursery.start(
                    lambda task_status, address=address, handler=handler: serve_client_port(
                        address.host,
                        address.port,
                        resolve=lambda path: None,
                        known_services=frozenset(),
                        http_handler=handler,
                        http_body_limit=handler.body_limit,
                        max_recv_message_bytes=0,
                        tls=address.tls,
                        unix=address.unix,
                        task_status=task_status,
                    )
                )
            )
        task_status.started(ports)

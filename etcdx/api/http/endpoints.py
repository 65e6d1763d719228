"""The HTTP/1.1 side of the client port: /health, /version, /metrics, the v2 API and the /v3 gateway, behind
etcd's access controller (access_control.py: host whitelist, CORS headers, OPTIONS), as etcd 3.5 serves them."""

from __future__ import annotations

import json
import urllib.parse
from email.utils import formatdate

from etcdx.api.http import gateway, v2routes
from etcdx.api.http.access_control import AccessControl
from etcdx.mvcc.alarms import KNOWN_ALARMS, alarm_name
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.server import metrics, metrics_page
from etcdx.server.server import EtcdServer
from etcdx.version import CLUSTER_VERSION, SERVER_VERSION

_TEXT = ("content-type", "text/plain; charset=utf-8")
_VERSION_BODY = json.dumps({"etcdserver": SERVER_VERSION, "etcdcluster": CLUSTER_VERSION}, separators=(",", ":"))


def _response(status: int, body: bytes, content_type: tuple[str, str] = _TEXT, extra=()) -> HttpResponse:
    return HttpResponse(status=status, headers=[content_type, *extra], body=body)


_METHOD_NOT_ALLOWED = _response(
    405, b"Method Not Allowed\n", extra=[("allow", "GET"), ("x-content-type-options", "nosniff")]
)
_NOT_FOUND = _response(404, b"404 page not found\n", extra=[("x-content-type-options", "nosniff")])


def _dated(response: HttpResponse) -> HttpResponse:
    """Go's net/http dates every answer."""
    if any(name == "date" for name, _ in response.headers):
        return response
    return HttpResponse(response.status, [*response.headers, ("date", formatdate(usegmt=True))], response.body)


def _v3_path(path: str) -> str:
    """etcd serves /v3beta/... as /v3/..."""
    return "/v3/" + path[len("/v3beta/") :] if path.startswith("/v3beta/") else path


class HttpEndpoints:
    """An HttpHandler for one client URL (``secure``: a TLS one, where etcd checks no Host); ``gateway`` is
    None without --enable-grpc-gateway."""

    def __init__(
        self,
        server: EtcdServer,
        gateway: gateway.Gateway | None = None,
        access: AccessControl = AccessControl(),  # noqa: B008 - frozen
        *,
        secure: bool = False,
    ) -> None:
        self._server = server
        self._v2 = v2routes.V2Routes(server) if server.settings.enable_v2 else None
        self._gateway = gateway
        self._access = access
        self._secure = secure

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = self._access.refusal(request, self._secure)
        if refusal is not None:
            return _dated(refusal)
        cors = self._access.cors_headers(request)
        if request.method == "OPTIONS":
            return _dated(HttpResponse(200, cors, b""))
        response = await self._route(request)
        kept = [(name, value) for name, value in response.headers if not name.startswith("access-control-")]
        return _dated(HttpResponse(response.status, [*cors, *kept], response.body))

    async def _route(self, request: HttpRequest) -> HttpResponse:
        path = _v3_path(request.target.split("?", 1)[0])
        if self._gateway is not None and gateway.serves(path):
            return await self._gateway(request, path)
        if self._v2 is not None and v2routes.serves(path):
            return await self._v2(request)
        handler = {"/health": self.health, "/version": self._version, "/metrics": self.metrics}.get(path)
        if handler is None:
            return _NOT_FOUND
        if request.method != "GET" and path != "/metrics":  # etcd serves /metrics to any method
            return _METHOD_NOT_ALLOWED
        return handler(request)

    def body_limit(self, method: str, target: str) -> int | None:
        """None for paths that read no body (as in etcd, /health, /version and /metrics ignore it), so
        net/http1.py drops a small one and answers a large one without reading it, closing the connection;
        the v2 API reads a form of up to Go's ParseForm limit."""
        path = _v3_path(target.split("?", 1)[0])
        if self._gateway is not None and gateway.serves(path):
            return self._gateway.body_limit
        if self._v2 is not None and v2routes.serves(path):
            return v2routes.BODY_LIMIT
        return None

    def health(self, request: HttpRequest) -> HttpResponse:
        """/health, counted in etcd_server_health_success / _failures as etcd counts its checks."""
        response = self._health(request)
        (metrics.HEALTH_SUCCESS if response.status == 200 else metrics.HEALTH_FAILURES).inc()
        return response

    def _health(self, request: HttpRequest) -> HttpResponse:
        """Unhealthy (503) when the member cannot write (its WAL or backend failed; no exclude hides that), and
        while an alarm is active, unless its type is excluded with ?exclude=NOSPACE|CORRUPT (an unknown type,
        left by an old data dir, by its number). As etcd 3.5.1: the reason names the first alarm not excluded
        (etcd's first is in Go map order, etcdx's in (member id, type) order), a type other than NOSPACE and
        CORRUPT is "ALARM UNKNOWN", and the 503 is Go's http.Error (newline, nosniff).
        """
        failure = self._server.write_failure
        if failure is not None:  # stopping: it cannot persist anything
            return _response(503, json.dumps({"health": "false", "reason": failure}, separators=(",", ":")).encode())
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.target).query)
        excluded = set(query.get("exclude", []))
        for _, alarm in self._server.alarms.list():
            name = alarm_name(alarm)
            if name in excluded:
                continue
            reason = f"ALARM {name}" if alarm in KNOWN_ALARMS else "ALARM UNKNOWN"
            body = json.dumps({"health": "false", "reason": reason}, separators=(",", ":")) + "\n"
            return _response(503, body.encode(), extra=[("x-content-type-options", "nosniff")])
        return _response(200, b'{"health":"true","reason":""}')

    def _version(self, request: HttpRequest) -> HttpResponse:
        return _response(200, _VERSION_BODY.encode(), ("content-type", "application/json"))

    def metrics(self, request: HttpRequest) -> HttpResponse:
        body, content_type = metrics_page.scrape()
        return _response(200, body, ("content-type", content_type))

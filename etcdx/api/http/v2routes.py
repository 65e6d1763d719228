"""Routes /v2/* to the v2 handlers, as etcd 3.4's client mux does with --enable-v2: a path that is not clean
(Go's path.Clean, keeping a trailing slash) is redirected with 301, an unknown one is 404."""

from __future__ import annotations

import posixpath
import time
import urllib.parse
from collections.abc import Awaitable
from email.utils import formatdate

from etcdx.api.http.v2cluster import V2Cluster
from etcdx.api.http.v2common import CORS, TEXT
from etcdx.api.http.v2keys import PREFIX as KEYS_PREFIX
from etcdx.api.http.v2keys import serve_keys
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.server import metrics
from etcdx.server.server import EtcdServer

# Go's ParseForm reads at most this much of a form body.
BODY_LIMIT = 10 * 1024 * 1024
_NOT_FOUND = HttpResponse(404, [*CORS, TEXT, ("x-content-type-options", "nosniff")], b"404 page not found\n")


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path).replace("//", "/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def serves(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


class V2Routes:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server
        self._cluster = V2Cluster(server)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        response = await self._route(request)
        # Go's net/http dates every answer, and declares the length of the body it does not send to HEAD.
        headers = [*response.headers, ("date", formatdate(usegmt=True))]
        if request.method == "HEAD" and isinstance(response.body, bytes):
            return HttpResponse(response.status, [*headers, ("content-length", str(len(response.body)))], b"")
        return HttpResponse(response.status, headers, response.body)

    async def _route(self, request: HttpRequest) -> HttpResponse:
        raw_path, sep, query = request.target.partition("?")
        path = urllib.parse.unquote(raw_path, errors="surrogateescape")
        cleaned = _clean(path)
        if cleaned != path:
            location = urllib.parse.quote(cleaned, errors="surrogateescape") + sep + query
            body = b""
            headers = [*CORS, ("location", location)]
            if request.method in ("GET", "HEAD"):
                headers.append(("content-type", "text/html; charset=utf-8"))
            if request.method == "GET":
                body = f'<a href="{location}">Moved Permanently</a>.\n\n'.encode()
            return HttpResponse(301, headers, body)
        if path == KEYS_PREFIX or path.startswith(KEYS_PREFIX + "/"):
            return await _counted(serve_keys(self._server, request), request, query)
        if path == "/v2/members" or path.startswith("/v2/members/"):
            return await self._cluster.members(request, path[len("/v2/members") :].strip("/"))
        if path == "/v2/machines":
            return self._cluster.machines(request)
        if path in ("/v2/stats/self", "/v2/stats/leader", "/v2/stats/store"):
            return self._cluster.stats(request, path.rsplit("/", 1)[1])
        return _NOT_FOUND


async def _counted(answer: Awaitable[HttpResponse], request: HttpRequest, query: str) -> HttpResponse:
    """A keys request, counted as etcd's v2http counts it: received by method, then failed by method and code,
    or (not a watch) its duration when it succeeded."""
    method = request.method
    metrics.V2_RECEIVED.labels(method).inc()
    started = time.perf_counter()
    response = await answer
    if response.status >= 400:
        metrics.V2_FAILED.labels(method, str(response.status)).inc()
    elif "wait=true" not in query:
        metrics.V2_SUCCESS_SECONDS.labels(method).observe(time.perf_counter() - started)
    return response

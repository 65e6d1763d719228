"""/v2/members, /v2/machines and /v2/stats/* as etcd 3.4 serves them for its single member."""

from __future__ import annotations

import time

from etcdx.api.http.v2common import CORS, JSON, TEXT, cluster_header
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.server.server import EtcdServer
from etcdx.v2store.events import format_time
from etcdx.v2store.gojson import encode


def _go_duration(ns: int) -> str:
    """Go's time.Duration.String() for a positive duration of at least a second."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    frac = f"{nanos:09d}".rstrip("0")
    text = f"{secs}" + (f".{frac}" if frac else "") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def _not_allowed(methods: str) -> HttpResponse:
    headers = [*CORS, TEXT, ("allow", methods), ("x-content-type-options", "nosniff")]
    return HttpResponse(405, headers, b"Method Not Allowed\n")


def _json(status: int, value: object, newline: bool = True, extra=()) -> HttpResponse:
    return HttpResponse(status, [*CORS, JSON, *extra], encode(value) + (b"\n" if newline else b""))


class V2Cluster:
    """The member's identity as the v2 API shows it. ``started_ns``: when the member started (Unix ns)."""

    def __init__(self, server: EtcdServer) -> None:
        self._server = server
        self._started_ns = time.time_ns()

    def _member(self) -> dict[str, object]:
        s = self._server.settings
        return {
            "id": f"{self._server.member_id:x}",
            "name": s.name,
            "peerURLs": list(s.peer_urls),
            "clientURLs": list(s.client_urls),
        }

    def members(self, request: HttpRequest, sub: str) -> HttpResponse:
        if request.method not in ("GET", "POST", "DELETE", "PUT"):
            return _not_allowed("GET,POST,DELETE,PUT")
        extra = [cluster_header(self._server)]
        if request.method != "GET":
            return self._change_member(request, sub, extra)
        if sub == "":
            return _json(200, {"members": [self._member()]}, extra=extra)
        if sub == "leader":
            return _json(200, self._member(), extra=extra)
        return _json(404, {"message": "Not found"}, newline=False, extra=extra)

    def _change_member(self, request: HttpRequest, sub: str, extra: list) -> HttpResponse:
        """etcd's answers to a request that names no member of this cluster or has the wrong content type;
        anything else would change the membership, which needs Raft (not run yet): 500."""
        if request.method in ("DELETE", "PUT"):
            try:
                member_id = int(sub, 16)
            except ValueError:
                member_id = None
            if member_id != self._server.member_id:
                return _json(404, {"message": f"No such member: {sub}"}, newline=False, extra=extra)
        if request.method in ("POST", "PUT"):
            content_type = dict(request.headers).get("content-type", "")
            if content_type.split(";")[0].strip() != "application/json":
                message = f"Bad Content-Type {content_type}, accept application/json"
                return _json(415, {"message": message}, newline=False, extra=extra)
        message = "etcdx: membership changes are not implemented yet (they need Raft)"
        return _json(500, {"message": message}, newline=False, extra=extra)

    def machines(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return _not_allowed("GET,HEAD")
        return HttpResponse(200, [*CORS, TEXT], ", ".join(self._server.settings.client_urls).encode())

    def stats(self, request: HttpRequest, which: str) -> HttpResponse:
        if request.method != "GET":
            return _not_allowed("GET")
        server = self._server
        member = f"{server.member_id:x}"
        if which == "store":
            store = server.v2store
            return _json(200, store.stats.fields(store.hub.count), newline=False)
        if which == "leader":
            return _json(200, {"leader": member, "followers": {}}, newline=False)
        if which == "self":
            now = time.time_ns()
            started = format_time(self._started_ns)
            body = {
                "name": server.settings.name,
                "id": member,
                "state": "StateLeader",
                "startTime": started,
                "leaderInfo": {"leader": member, "uptime": _go_duration(now - self._started_ns), "startTime": started},
                "recvAppendRequestCnt": 0,
                "sendAppendRequestCnt": 0,
            }
            return _json(200, body, newline=False)
        return HttpResponse(404, [*CORS, TEXT, ("x-content-type-options", "nosniff")], b"404 page not found\n")

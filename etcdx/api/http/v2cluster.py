"""/v2/members, /v2/machines and /v2/stats/* as etcd 3.4 serves them. /v2/members lists the cluster's members
and changes them (POST adds, PUT updates peer URLs, DELETE removes) through the same code as the v3 Cluster
service (ClusterService.add/remove/update: etcd's checks, then the change through the log), answering with
etcd 3.4's v2 codes and bodies: 201 with the new member, 204, 400 for a body etcd refuses, 404 "No such member",
409 for a taken peer URL or id, 410 for a removed id, 415 for another content type, and 500
"Internal Server Error" for any other failure (etcd's writeError: a change refused for quorum, a timeout)."""

from __future__ import annotations

import re
import time

from etcdx import errors
from etcdx.api.grpc.cluster import ClusterService
from etcdx.api.http.v2common import CORS, JSON, TEXT, cluster_header
from etcdx.api.http.v2member_request import BadMemberRequest, peer_urls
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.pb.etcdserverpb import rpc_pb2
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


_HEX = re.compile(r"[0-9a-fA-F]+")
_CONFLICTS = {
    errors.ERR_MEMBER_EXIST.message: "membership: ID exists",
    errors.ERR_PEER_URL_EXIST.message: "membership: peerURL exists",
}
"""etcd's membership errors, which its v2 API answers 409 with, by the v3 text etcdx raises."""


def _internal_error(extra: list) -> HttpResponse:
    return _json(500, {"message": "Internal Server Error"}, newline=False, extra=extra)


def _json(status: int, value: object, newline: bool = True, extra=()) -> HttpResponse:
    return HttpResponse(status, [*CORS, JSON, *extra], encode(value) + (b"\n" if newline else b""))


class V2Cluster:
    """The member's identity as the v2 API shows it. ``started_ns``: when the member started (Unix ns)."""

    def __init__(self, server: EtcdServer) -> None:
        self._server = server
        self._started_ns = time.time_ns()
        self._changes = ClusterService(server)

    def _member(self, member: rpc_pb2.Member) -> dict[str, object]:
        return {
            "id": f"{member.ID:x}",
            "name": member.name,
            "peerURLs": list(member.peerURLs),
            "clientURLs": list(member.clientURLs),
        }

    async def members(self, request: HttpRequest, sub: str) -> HttpResponse:
        if request.method not in ("GET", "POST", "DELETE", "PUT"):
            return _not_allowed("GET,POST,DELETE,PUT")
        extra = [cluster_header(self._server)]
        if request.method == "POST":
            return await self._add(request, extra)
        if request.method in ("DELETE", "PUT"):
            if sub == "":  # etcd's getID: no id in the path
                headers = [*CORS, TEXT, ("x-content-type-options", "nosniff"), *extra]
                return HttpResponse(405, headers, b"Method Not Allowed\n")
            member_id = int(sub, 16) if _HEX.fullmatch(sub) else None  # Go's strconv.ParseUint(sub, 16, 64)
            if member_id is None or member_id >= 2**64:
                return _json(404, {"message": f"No such member: {sub}"}, newline=False, extra=extra)
            if request.method == "DELETE":
                return await self._remove(member_id, extra)
            return await self._update(request, member_id, extra)
        if sub == "":
            return _json(200, {"members": [self._member(m) for m in self._server.members]}, extra=extra)
        if sub == "leader":
            leader = self._server.leader_id
            found = [m for m in self._server.members if leader == m.ID]
            if not found:
                return _json(503, {"message": "During election"}, newline=False, extra=extra)
            return _json(200, self._member(found[0]), extra=extra)
        return _json(404, {"message": "Not found"}, newline=False, extra=extra)

    def _read_urls(self, request: HttpRequest, extra: list) -> list[str] | HttpResponse:
        content_type = dict(request.headers).get("content-type", "")
        if content_type.split(";")[0].strip() != "application/json":
            message = f"Bad Content-Type {content_type}, accept application/json"
            return _json(415, {"message": message}, newline=False, extra=extra)
        try:
            return peer_urls(request.body)
        except BadMemberRequest as exc:
            return _json(400, {"message": str(exc)}, newline=False, extra=extra)

    async def _add(self, request: HttpRequest, extra: list) -> HttpResponse:
        urls = self._read_urls(request, extra)
        if isinstance(urls, HttpResponse):
            return urls
        try:
            member, _ = await self._changes.add(urls)
        except errors.EtcdError as exc:
            if exc.code in (errors.ERR_MEMBER_EXIST.code, errors.ERR_PEER_URL_EXIST.code) and exc.message in _CONFLICTS:
                return _json(409, {"message": _CONFLICTS[exc.message]}, newline=False, extra=extra)
            return _internal_error(extra)
        return _json(201, self._member(member), extra=extra)

    async def _remove(self, member_id: int, extra: list) -> HttpResponse:
        if member_id in self._server.membership.removed:
            return _json(410, {"message": f"Member permanently removed: {member_id:x}"}, newline=False, extra=extra)
        try:
            await self._changes.remove(member_id)
        except errors.EtcdError as exc:
            if exc.message == errors.ERR_MEMBER_NOT_FOUND.message:
                return _json(404, {"message": f"No such member: {member_id:x}"}, newline=False, extra=extra)
            return _internal_error(extra)
        return HttpResponse(204, [*CORS, *extra], b"")

    async def _update(self, request: HttpRequest, member_id: int, extra: list) -> HttpResponse:
        urls = self._read_urls(request, extra)
        if isinstance(urls, HttpResponse):
            return urls
        try:
            await self._changes.update(member_id, urls)
        except errors.EtcdError as exc:
            if exc.message == errors.ERR_PEER_URL_EXIST.message:
                return _json(409, {"message": _CONFLICTS[exc.message]}, newline=False, extra=extra)
            if exc.message == errors.ERR_MEMBER_NOT_FOUND.message:
                return _json(404, {"message": f"No such member: {member_id:x}"}, newline=False, extra=extra)
            return _internal_error(extra)
        return HttpResponse(204, [*CORS, *extra], b"")

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

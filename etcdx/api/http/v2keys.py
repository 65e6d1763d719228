"""/v2/keys as etcd 3.4 serves it (v2http's keysHandler): request parsing with etcd's errors, writes through
the log as V2Requests, reads and watches from the member's v2 store.

Parameters come from the query string and, for PUT and POST with a form content type, from the body (body
values first, as Go's ParseForm orders them). Every answer carries X-Etcd-Cluster-ID; a successful one also
X-Etcd-Index, X-Raft-Index and X-Raft-Term, an error only X-Etcd-Index. A watch (wait=true) sends its
headers at once and then one event (or, with stream=true, every event, one JSON per line).
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import AsyncIterator

import trio

from etcdx import errors
from etcdx.api.http.v2common import CORS, JSON, TEXT, cluster_header
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest, V2Request
from etcdx.server.server import EtcdServer
from etcdx.v2store import errors as e
from etcdx.v2store.bootstrap import KEYS_NAMESPACE
from etcdx.v2store.errors import V2Error
from etcdx.v2store.events import Event
from etcdx.v2store.watchers import Watcher

PREFIX = "/v2/keys"
_METHODS = ("HEAD", "GET", "PUT", "POST", "DELETE")
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_FORM_TYPE = "application/x-www-form-urlencoded"
_BAD_ESCAPE = re.compile("%(?![0-9a-fA-F]{2})")


class _Form:
    """Go's url.Values after ParseForm: each name's values in order (body first, then query)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in pairs:
            self.values.setdefault(name, []).append(value)

    def has(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> str:
        return self.values.get(name, [""])[0]

    def bool(self, name: str, cause: str | None = None) -> bool:
        if name not in self.values:
            return False
        text = self.values[name][0]
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise V2Error(e.INVALID_FIELD, cause or f'invalid value for "{name}"')

    def uint(self, name: str, code: int) -> int:
        if name not in self.values:
            return 0
        text = self.values[name][0]
        if not text.isascii() or not text.isdigit() or int(text) >= 1 << 64:
            raise V2Error(code, f'invalid value for "{name}"')
        return int(text)


def _parse_pairs(text: str) -> list[tuple[str, str]]:
    """Go's url.ParseQuery: a bad escape or a semicolon is an error (the form is then refused with 210)."""
    if (bad := _BAD_ESCAPE.search(text)) is not None:
        raise V2Error(e.INVALID_FORM, f'invalid URL escape "{text[bad.start() : bad.start() + 3]}"')
    if ";" in text:
        raise V2Error(e.INVALID_FORM, "invalid semicolon separator in query")
    return urllib.parse.parse_qsl(text, keep_blank_values=True, errors="surrogateescape")


def _form(request: HttpRequest, query: str) -> _Form:
    pairs = []
    if request.method in ("PUT", "POST"):
        content_type = dict(request.headers).get("content-type", "").split(";")[0].strip().lower()
        if content_type == _FORM_TYPE:
            pairs = _parse_pairs(request.body.decode("utf-8", "surrogateescape"))
    return _Form(pairs + _parse_pairs(query))


class _KeyRequest:
    """A parsed /v2/keys request (etcd's parseKeyRequest); raises V2Error (index 0) for a bad parameter."""

    def __init__(self, request: HttpRequest, key: str, query: str, now: int) -> None:
        form = _form(request, query)
        self.method = request.method
        self.path = KEYS_NAMESPACE + ("/" + key if key else "")
        self.prev_index = form.uint("prevIndex", e.INDEX_NAN)
        self.wait_index = form.uint("waitIndex", e.INDEX_NAN)
        self.recursive = form.bool("recursive")
        self.sorted = form.bool("sorted")
        self.wait = form.bool("wait")
        self.dir = form.bool("dir")
        form.bool("quorum")  # a quorum read is what every read here is already (one member, applied state)
        self.stream = form.bool("stream")
        if self.wait and self.method != "GET":
            raise V2Error(e.INVALID_FIELD, '"wait" can only be used with GET requests')
        self.prev_value = form.get("prevValue")
        if form.has("prevValue") and not self.prev_value:
            raise V2Error(e.PREV_VALUE_REQUIRED, '"prevValue" cannot be empty')
        self.value_on_success = not form.bool("noValueOnSuccess")
        ttl = form.uint("ttl", e.TTL_NAN) if form.get("ttl") else None
        self.prev_exist = form.bool("prevExist", "invalid value for prevExist") if form.has("prevExist") else None
        self.refresh = False
        if form.has("refresh"):
            self.refresh = form.bool("refresh", "invalid value for refresh")
            if self.refresh:
                if form.get("value"):
                    raise V2Error(e.REFRESH_VALUE, "A value was provided on a refresh")
                if ttl is None:
                    raise V2Error(e.REFRESH_TTL_REQUIRED, "No TTL value set")
        self.value = form.get("value")
        self.expiration = now + ttl * 1_000_000_000 if ttl is not None else 0

    def log_request(self) -> V2Request:
        request = V2Request(
            method=self.method,
            path=self.path,
            value=self.value,
            dir=self.dir,
            prev_value=self.prev_value,
            prev_index=self.prev_index,
            expiration=self.expiration,
            recursive=self.recursive,
            refresh=self.refresh,
        )
        if self.prev_exist is not None:
            request.prev_exist = self.prev_exist
        return request


def error_response(server: EtcdServer, error: V2Error, trim: str = KEYS_NAMESPACE) -> HttpResponse:
    if trim and error.cause.startswith(trim):
        error = V2Error(error.code, error.cause[len(trim) :], error.index)
    headers = [*CORS, JSON, cluster_header(server), ("x-etcd-index", str(error.index))]
    return HttpResponse(error.status, headers, error.body())


def _success_headers(server: EtcdServer, etcd_index: int) -> list[tuple[str, str]]:
    return [
        *CORS,
        JSON,
        cluster_header(server),
        ("x-etcd-index", str(etcd_index)),
        ("x-raft-index", str(server.committed_index)),
        ("x-raft-term", str(server.raft_term)),
    ]


def _event_response(server: EtcdServer, event: Event, value_on_success: bool) -> HttpResponse:
    status = 201 if event.is_created else 200
    return HttpResponse(
        status, _success_headers(server, event.etcd_index), event.body(KEYS_NAMESPACE, value_on_success)
    )


async def _watch_events(watcher: Watcher, stream: bool) -> AsyncIterator[bytes]:
    woken = [trio.Event()]
    watcher.wake = lambda: woken[0].set()
    try:
        while True:
            while watcher.events:
                yield watcher.events.popleft().body(KEYS_NAMESPACE)
                if not stream:
                    return
            if watcher.closed:
                return
            await woken[0].wait()
            woken[0] = trio.Event()
    finally:
        watcher.remove()


async def serve_keys(server: EtcdServer, request: HttpRequest) -> HttpResponse:
    """Answers one /v2/keys request."""
    if request.method not in _METHODS:
        headers = [*CORS, TEXT, ("allow", ",".join(_METHODS)), ("x-content-type-options", "nosniff")]
        return HttpResponse(405, headers, b"Method Not Allowed\n")
    store = server.v2store
    raw_path, _, query = request.target.partition("?")
    key = urllib.parse.unquote(raw_path[len(PREFIX) :], errors="surrogateescape").strip("/")
    try:
        parsed = _KeyRequest(request, key, query, time.time_ns())
    except V2Error as error:
        return error_response(server, error)
    if request.method in ("GET", "HEAD"):
        try:
            if parsed.wait:
                watcher = store.watch(parsed.path, parsed.recursive, parsed.stream, parsed.wait_index)
            else:
                event = store.get(parsed.path, parsed.recursive, parsed.sorted, time.time_ns())
                return _event_response(server, event, True)
        except V2Error as error:
            return error_response(server, error)
        return HttpResponse(200, _success_headers(server, watcher.start_index), _watch_events(watcher, parsed.stream))
    try:
        result = await server.propose(InternalRequest(v2=parsed.log_request()))
    except errors.EtcdError as exc:
        return error_response(server, V2Error(e.RAFT_INTERNAL, exc.message, 0))
    if result.error is not None:
        return error_response(server, result.error)
    return _event_response(server, result.events[0], parsed.value_on_success)

"""The /v3 JSON gateway on the client port (--enable-grpc-gateway), answering as etcd 3.5.1's grpc-gateway does.

Every route (gateway_routes.py) is a POST whose JSON body is the request message (gateway_json.py); the call
goes to the same method the gRPC transport resolves, behind the same auth gate (an ``Authorization`` header is
the call's "authorization" metadata, a ``Grpc-Metadata-<name>`` header its <name> metadata, ``Grpc-Timeout``
its deadline) and the same receive limit (the request as protobuf at most --max-request-bytes plus gRPC's
overhead).

Unary answers: 200 with the response JSON, or the error as {"error","code","message"} with grpc-gateway's
HTTP status for the code. Streams (watch, lease keep-alive, snapshot, election observe): chunked, one
{"result":...} object and a newline per message; the status is decided by the first outcome (a message: 200;
an error first: its status, the error as {"error":{"grpc_code","http_code","message","http_status"}}), and the
answer then streams until the call ends or the client goes. A first outcome that takes longer than
FIRST_OUTCOME_WAIT is answered 200 at once, so a client that goes meanwhile is noticed (etcd holds its
headers back until then). A bidi call receives the JSON objects of the body, one message each, then sees its
request stream end (a later object that does not decode ends it there, as etcd's gateway does).

Paths: /v3beta/... is /v3/... (accessed through HttpEndpoints); a path Go's mux would clean is redirected
(301); an unknown one is 404 "Not Found", another method than POST on a route is 405.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator
from http import HTTPStatus

import trio

from etcdx.api.http import gateway_call
from etcdx.api.http.gateway_json import from_json, go_string, read_messages, to_json
from etcdx.api.http.gateway_routes import ROUTES, Route
from etcdx.api.http.gateway_scan import GoJsonError
from etcdx.errors import EtcdError, StatusCode, message_too_large
from etcdx.net.grpc_server import Resolver, RpcContext
from etcdx.net.grpc_status import parse_grpc_timeout
from etcdx.net.http1 import HttpRequest, HttpResponse

FIRST_OUTCOME_WAIT = 1.0
_JSON = ("content-type", "application/json")
_GRPC_METADATA = ("grpc-metadata-content-type", "application/grpc")
_TEXT = ("content-type", "text/plain; charset=utf-8")
_NOSNIFF = ("x-content-type-options", "nosniff")
_NOT_FOUND = HttpResponse(404, [_TEXT, _NOSNIFF], b"Not Found\n")
_METHOD_NOT_ALLOWED = HttpResponse(405, [_TEXT, _NOSNIFF], b"Method Not Allowed\n")

# grpc-gateway v1's HTTPStatusFromCode.
HTTP_STATUS = {
    StatusCode.OK: 200,
    StatusCode.CANCELLED: 408,
    StatusCode.UNKNOWN: 500,
    StatusCode.INVALID_ARGUMENT: 400,
    StatusCode.DEADLINE_EXCEEDED: 504,
    StatusCode.NOT_FOUND: 404,
    StatusCode.ALREADY_EXISTS: 409,
    StatusCode.PERMISSION_DENIED: 403,
    StatusCode.UNAUTHENTICATED: 401,
    StatusCode.RESOURCE_EXHAUSTED: 429,
    StatusCode.FAILED_PRECONDITION: 400,
    StatusCode.ABORTED: 409,
    StatusCode.OUT_OF_RANGE: 400,
    StatusCode.UNIMPLEMENTED: 501,
    StatusCode.INTERNAL: 500,
    StatusCode.UNAVAILABLE: 503,
    StatusCode.DATA_LOSS: 500,
}


def serves(path: str) -> bool:
    return path.startswith("/v3/")


def clean_path(path: str) -> str:
    """Go's ServeMux cleaning (path.Clean, keeping a trailing slash)."""
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def error_response(error: EtcdError) -> HttpResponse:
    message = go_string(error.message)
    body = f'{{"error":{message},"code":{int(error.code)},"message":{message}}}'
    return HttpResponse(HTTP_STATUS.get(error.code, 500), [_JSON], body.encode())


def _stream_error(error: EtcdError) -> bytes:
    status = HTTP_STATUS.get(error.code, 500)
    return (
        f'{{"error":{{"grpc_code":{int(error.code)},"http_code":{status},"message":{go_string(error.message)},'
        f'"http_status":{go_string(HTTPStatus(status).phrase)}}}}}'
    ).encode()


def _header(request: HttpRequest, name: str) -> str | None:
    return next((value for key, value in request.headers if key.lower() == name), None)


def _metadata(request: HttpRequest) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for name, value in request.headers:
        lower = name.lower()
        if lower == "authorization":
            metadata["authorization"] = value
        elif lower.startswith("grpc-metadata-"):
            metadata[lower[len("grpc-metadata-") :]] = value
    return metadata


class Gateway:
    """An HttpHandler for /v3/ paths. ``run`` holds the nursery its streaming calls run in."""

    def __init__(self, resolve: Resolver, max_recv_message_bytes: int) -> None:
        self._resolve = resolve
        self._max_recv = max_recv_message_bytes
        self._nursery: trio.Nursery | None = None

    @property
    def body_limit(self) -> int:
        """The largest body read: room for a request at the receive limit as base64 in JSON."""
        return 2 * self._max_recv + 64 * 1024

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def __call__(self, request: HttpRequest, path: str) -> HttpResponse:
        cleaned = clean_path(path)
        if cleaned != path:
            query = request.target.partition("?")[2]
            return HttpResponse(301, [("location", cleaned + ("?" + query if query else ""))], b"")
        route = ROUTES.get(path)
        if route is None:
            return _NOT_FOUND
        if request.method != "POST":
            return _METHOD_NOT_ALLOWED
        method = self._resolve(route.rpc)
        if method is None:
            return error_response(EtcdError(StatusCode.UNIMPLEMENTED, f"unknown method for {route.rpc}"))
        timeout = _header(request, "grpc-timeout")
        deadline = None
        if timeout is not None:
            seconds = parse_grpc_timeout(timeout.encode("latin-1"))
            if seconds is None:
                return error_response(EtcdError(StatusCode.INVALID_ARGUMENT, f"invalid grpc-timeout: {timeout}"))
            deadline = trio.current_time() + seconds
        ctx = RpcContext(route.rpc, _metadata(request), deadline)
        if gateway_call.is_streaming(method):
            return await self._stream(route, method, request.body, ctx)
        try:
            data = from_json(route.request, request.body).SerializeToString()
        except GoJsonError as exc:
            return error_response(EtcdError(StatusCode.INVALID_ARGUMENT, str(exc)))
        try:
            self._check_size(data)
            reply = await gateway_call.call_unary(method, data, ctx)
        except EtcdError as exc:
            return error_response(exc)
        body = to_json(route.response.FromString(reply)).encode()
        return HttpResponse(200, [_JSON, _GRPC_METADATA], body)

    def _check_size(self, data: bytes) -> None:
        if len(data) > self._max_recv:
            raise message_too_large(len(data), self._max_recv)

    async def _stream(self, route: Route, method, body: bytes, ctx: RpcContext) -> HttpResponse:
        try:
            requests = _stream_requests(route, method, body)
            for data in requests:
                self._check_size(data)
        except GoJsonError as exc:
            # etcd's gateway refuses a server stream's request as a unary one's; a bidi stream's first message
            # fails the call with the decoder's error as it is (UNKNOWN).
            code = StatusCode.UNKNOWN if gateway_call.is_bidi(method) else StatusCode.INVALID_ARGUMENT
            return error_response(EtcdError(code, str(exc)))
        except EtcdError as exc:
            return error_response(exc)
        assert self._nursery is not None, "Gateway.run is not running"
        stream = gateway_call.open_stream(self._nursery, method, requests, ctx)
        first: tuple = ("pending", None)
        try:
            with trio.move_on_after(FIRST_OUTCOME_WAIT):
                first = await stream.next()
        except BaseException:
            stream.close()
            raise
        kind, payload = first
        if kind == "error":
            stream.close()
            return HttpResponse(HTTP_STATUS.get(payload.code, 500), [_JSON], _single(_stream_error(payload)))
        headers = [_JSON, _GRPC_METADATA] if kind in ("message", "pending") else [_JSON]
        return HttpResponse(200, headers, StreamBody(route, stream, first))


def _stream_requests(route: Route, method, body: bytes) -> list[bytes]:
    """The request messages a streaming call gets from ``body``: a server stream one (an empty body is the
    empty message), a bidi stream each JSON value up to the first that does not decode (if that is the first,
    GoJsonError)."""
    if not gateway_call.is_bidi(method):
        return [from_json(route.request, body).SerializeToString()]
    messages: list[bytes] = []
    try:
        for message in read_messages(route.request, body):
            messages.append(message.SerializeToString())
    except GoJsonError:
        if not messages:
            raise
    return messages


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


class StreamBody:
    """A stream's answer as an async iterator of chunks: {"result":...} lines from ``first`` on, then its error
    object if it fails. ``aclose`` ends the call, whether or not iteration began (so an answer whose headers
    could not be sent leaves nothing running)."""

    def __init__(self, route: Route, stream: gateway_call.Stream, first: tuple) -> None:
        self._route = route
        self._stream = stream
        self._next: tuple | None = first

    def __aiter__(self) -> StreamBody:
        return self

    async def __anext__(self) -> bytes:
        outcome = self._next
        self._next = None
        if outcome is None or outcome[0] == "pending":
            outcome = await self._stream.next()
        kind, payload = outcome
        if kind == "message":
            return b'{"result":' + to_json(self._route.response.FromString(payload)).encode() + b"}\n"
        if kind == "error":
            self._next = ("end", None)
            return _stream_error(payload)
        self._stream.close()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._stream.close()

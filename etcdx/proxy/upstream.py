"""The proxies' gRPC client to the upstream cluster: HTTP/2 (the h2 library) on trio.

``Upstream`` holds one connection at a time to one of its endpoints; a call made while there is none
connects, trying the endpoints in turn from the one after the last that failed. A connection that breaks
fails its calls with UNAVAILABLE (the proxy's client sees it and retries, as it would with etcd) and the
next call connects anew.

Contracts:
- ``unary`` returns the response bytes or raises EtcdError with the upstream's grpc-status and message,
  so a client of the proxy sees etcd's error texts unchanged.
- ``open_call`` gives an ``UpstreamCall`` for streaming methods: ``send`` waits for send window,
  ``receive`` returns the next message or None once the call ended OK, and raises EtcdError otherwise.
- Bounded memory: a call acknowledges received bytes (reopening the flow-control window) only while fewer
  than ``BACKLOG_BYTES`` of its messages wait to be taken, so a slow consumer stops the upstream sending.
- Leaving ``open_call``'s context resets the stream if it has not ended, so no upstream call outlives
  the client call it serves.
"""

from __future__ import annotations

import contextlib
import ssl
import struct
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio

from etcdx.errors import EtcdError, StatusCode
from etcdx.log import get_logger

log = get_logger("etcdx.proxy")

_PREFIX = struct.Struct(">BI")
CONNECT_TIMEOUT = 5.0
CLOSE_TIMEOUT = 1.0
READ_SIZE = 64 * 1024
BACKLOG_BYTES = 1024 * 1024
WINDOW = 4 * 1024 * 1024
MAX_RECV_MESSAGE = 64 * 1024 * 1024  # the largest reply the proxy takes (its listener's request cap too)
_CANCEL = 0x8
_TOO_LARGE = "grpc: received message larger than max (%d vs. %d)"


@dataclass(frozen=True)
class Endpoint:
    """One upstream member's client address: host:port, or with ``unix_path`` that unix socket (a read
    worker's member, etcdx/worker/)."""

    host: str
    port: int
    secure: bool
    unix_path: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoints(text: str) -> list[Endpoint]:
    """etcd's --endpoints: comma-separated host:port, optionally with an http:// or https:// scheme."""
    endpoints = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        secure = item.startswith("https://")
        for scheme in ("http://", "https://"):
            item = item.removeprefix(scheme)
        host, sep, port = item.rstrip("/").rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"invalid endpoint {raw!r}: want host:port")
        endpoints.append(Endpoint(host.strip("[]"), int(port), secure))
    if not endpoints:
        raise ValueError("no endpoints given")
    return endpoints


def unavailable(text: str) -> EtcdError:
    return EtcdError(StatusCode.UNAVAILABLE, text)


class UpstreamCall:
    """One gRPC call on an upstream connection (see the module contracts)."""

    def __init__(self, connection: _Connection, stream_id: int) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self._buffer = bytearray()
        self._messages: deque[bytes] = deque()
        self._arrived = trio.Event()
        self._window = trio.Event()
        self._backlog = 0
        self._unacknowledged = 0
        self.status: EtcdError | None = None  # set when the call ended; code OK for success
        self.ended = False

    async def send(self, message: bytes, *, end: bool = False) -> None:
        await self._connection.send_data(self, _PREFIX.pack(0, len(message)) + message, end)

    async def close_send(self) -> None:
        await self._connection.send_data(self, b"", True)

    async def receive(self) -> bytes | None:
        while not self._messages:
            if self.ended:
                if self.status is None or self.status.code == StatusCode.OK:
                    return None
                raise EtcdError(self.status.code, self.status.message)
            await self._arrived.wait()
            self._arrived = trio.Event()
        message = self._messages.popleft()
        self._backlog -= len(message)
        if self._unacknowledged and self._backlog < BACKLOG_BYTES:
            self._connection.acknowledge(self)
            self._connection.wake()
        return message

    async def responses(self) -> AsyncIterator[bytes]:
        while (message := await self.receive()) is not None:
            yield message

    # --- fed by the connection's reader ---

    def _on_data(self, data: bytes, flow: int) -> bool:
        """Takes DATA bytes; False if they announce a message larger than MAX_RECV_MESSAGE (the call ends)."""
        self._buffer += data
        self._unacknowledged += flow
        while len(self._buffer) >= 5:
            _compressed, size = _PREFIX.unpack_from(self._buffer)
            if size > MAX_RECV_MESSAGE:
                self._end(EtcdError(StatusCode.RESOURCE_EXHAUSTED, _TOO_LARGE % (size, MAX_RECV_MESSAGE)))
                return False
            if len(self._buffer) < 5 + size:
                break
            message = bytes(self._buffer[5 : 5 + size])
            del self._buffer[: 5 + size]
            self._messages.append(message)
            self._backlog += size
        self._arrived.set()
        return True

    def _end(self, status: EtcdError) -> None:
        if not self.ended:
            self.ended = True
            self.status = status
            self._arrived.set()
            self._window.set()


class _Connection:
    def __init__(self, endpoint: Endpoint, stream: trio.abc.Stream) -> None:
        self.endpoint = endpoint
        self._stream = stream
        # The proxy builds its own request headers and only reads grpc-status/grpc-message back: h2's header
        # validation and normalisation would cost more than the rest of a forwarded call.
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self._h2 = h2.connection.H2Connection(config)
        self._calls: dict[int, UpstreamCall] = {}
        self._wakeup = trio.Event()  # set when the h2 state machine has bytes for the writer
        self.broken: str | None = None

    async def start(self) -> None:
        self._h2.initiate_connection()
        self._h2.update_settings(
            {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW, h2.settings.SettingCodes.ENABLE_PUSH: 0}
        )
        self._h2.increment_flow_control_window(WINDOW)
        await self._stream.send_all(self._h2.data_to_send())

    def wake(self) -> None:
        """Has the writer send what the h2 state machine produced. Never blocks: the bytes waiting are bounded
        by the upstream's flow-control windows (DATA) and by the calls' own steps (everything else)."""
        self._wakeup.set()

    async def _writer(self) -> None:
        """The one task that writes to the socket, so the reader never waits for the upstream to read (two
        HTTP/2 peers that each stop reading while their writes are blocked would wait for each other)."""
        while self.broken is None:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            data = self._h2.data_to_send()
            if data:
                try:
                    await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    self._break(f"connection to {self.endpoint.address} lost: {exc}")

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reads until the connection ends; then every open call ends UNAVAILABLE."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer)
                task_status.started()
                while self.broken is None:
                    try:
                        data = await self._stream.receive_some(READ_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        self._break(f"connection to {self.endpoint.address} lost: {exc}")
                        break
                    if not data:
                        self._break(f"connection to {self.endpoint.address} closed")
                        break
                    try:
                        events = self._h2.receive_data(data)
                    except h2.exceptions.ProtocolError as exc:
                        self._break(f"protocol error from {self.endpoint.address}: {exc}")
                        break
                    for event in events:
                        self._handle(event)
                    self.wake()
                nursery.cancel_scope.cancel()
        finally:
            self._break(self.broken or "connection closed")
            with contextlib.suppress(Exception):
                await trio.aclose_forcefully(self._stream)

    def _break(self, reason: str) -> None:
        if self.broken is None:
            self.broken = reason
        calls, self._calls = self._calls, {}
        for call in calls.values():
            call._end(unavailable(reason))

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            call = self._calls.get(event.stream_id)
            if call is None:  # a call reset by this side: its bytes still count for the connection window
                with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                    self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                return
            if not call._on_data(event.data, event.flow_controlled_length):
                self._calls.pop(event.stream_id, None)
                with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                    self._h2.reset_stream(event.stream_id, _CANCEL)
                    self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif call._backlog < BACKLOG_BYTES:
                self.acknowledge(call)
        elif isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
            headers = dict(event.headers)
            if b"grpc-status" in headers:
                self._finish(event.stream_id, headers)
        elif isinstance(event, h2.events.StreamEnded):
            call = self._calls.pop(event.stream_id, None)
            if call is not None:
                call._end(EtcdError(StatusCode.INTERNAL, "server closed the stream without sending trailers"))
        elif isinstance(event, h2.events.StreamReset):
            call = self._calls.pop(event.stream_id, None)
            if call is not None:
                call._end(unavailable(f"stream reset by {self.endpoint.address} (code {event.error_code})"))
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            stream_id = getattr(event, "stream_id", 0)  # new settings may change every stream's window
            targets = list(self._calls.values()) if stream_id == 0 else [self._calls.get(stream_id)]
            for call in targets:
                if call is not None:
                    call._window.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._break(f"{self.endpoint.address} closed the connection (GOAWAY {event.error_code})")

    def _finish(self, stream_id: int, headers: dict[bytes, bytes]) -> None:
        call = self._calls.pop(stream_id, None)
        if call is None:
            return
        try:
            code = StatusCode(int(headers[b"grpc-status"]))
        except ValueError:
            code = StatusCode.UNKNOWN
        text = unquote_to_bytes(headers.get(b"grpc-message", b"")).decode("utf-8", "replace")
        call._end(EtcdError(code, text))

    def acknowledge(self, call: UpstreamCall) -> None:
        """Reopens the window for the bytes ``call`` received; the caller wakes the writer."""
        amount, call._unacknowledged = call._unacknowledged, 0
        if amount and not call.ended:
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self._h2.acknowledge_received_data(amount, call.stream_id)

    async def open(self, path: str, metadata: dict[str, str]) -> UpstreamCall:
        if self.broken is not None:
            raise unavailable(self.broken)
        stream_id = self._h2.get_next_available_stream_id()
        scheme = b"https" if self.endpoint.secure else b"http"
        headers = [
            (b":method", b"POST"),
            (b":scheme", scheme),
            (b":path", path.encode()),
            (b":authority", self.endpoint.address.encode()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", b"etcdx-grpc-proxy"),
        ]
        headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in metadata.items()]
        call = UpstreamCall(self, stream_id)
        try:
            self._h2.send_headers(stream_id, headers)
        except h2.exceptions.TooManyStreamsError:
            raise unavailable(f"too many streams open to {self.endpoint.address}") from None
        except h2.exceptions.ProtocolError as exc:
            self._break(f"connection to {self.endpoint.address} unusable: {exc}")
            raise unavailable(self.broken or str(exc)) from None
        self._calls[stream_id] = call
        self.wake()
        return call

    async def send_data(self, call: UpstreamCall, data: bytes, end: bool) -> None:
        view = memoryview(data)
        while True:
            if call.ended:
                return
            try:
                if not view:
                    if end:
                        self._h2.end_stream(call.stream_id)
                    break
                room = min(self._h2.local_flow_control_window(call.stream_id), self._h2.max_outbound_frame_size)
                if room <= 0:
                    call._window = trio.Event()
                    self.wake()
                    await call._window.wait()
                    continue
                chunk, view = view[:room], view[room:]
                self._h2.send_data(call.stream_id, bytes(chunk), end_stream=end and not view)
                if end and not view:
                    break
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                return
        self.wake()

    def reset(self, call: UpstreamCall) -> None:
        if not call.ended:
            call._end(EtcdError(StatusCode.CANCELLED, "context canceled"))
            self._calls.pop(call.stream_id, None)
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self._h2.reset_stream(call.stream_id, _CANCEL)
            self.wake()

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            self._h2.close_connection()
            with trio.move_on_after(CLOSE_TIMEOUT):
                await self._stream.send_all(self._h2.data_to_send())
        with contextlib.suppress(Exception):
            await trio.aclose_forcefully(self._stream)


def _default_tls() -> ssl.SSLContext:
    """https:// endpoints without --cacert: the system's CAs, ALPN h2 (as grpc-go)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    return context


class Upstream:
    """Calls to the upstream cluster over one connection at a time (see the module contracts).

    Run ``run`` in a nursery first; it keeps the connections' reader tasks."""

    def __init__(self, endpoints: list[Endpoint], tls: ssl.SSLContext | None = None) -> None:
        self.endpoints = endpoints
        self._tls = tls
        self._next = 0
        self._connection: _Connection | None = None
        self._connecting = trio.Lock()
        self._nursery: trio.Nursery | None = None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            if self._connection is not None:
                with trio.CancelScope(shield=True):
                    await self._connection.aclose()

    async def _current(self) -> _Connection:
        async with self._connecting:
            if self._connection is not None and self._connection.broken is None:
                return self._connection
            failures = []
            for _ in range(len(self.endpoints)):
                endpoint = self.endpoints[self._next % len(self.endpoints)]
                try:
                    connection = await self._connect(endpoint)
                except (OSError, trio.TooSlowError, ssl.SSLError, trio.BrokenResourceError) as exc:
                    failures.append(f"{endpoint.address}: {exc or type(exc).__name__}")
                    self._next += 1
                    continue
                self._connection = connection
                return connection
            raise unavailable("all upstream endpoints are unavailable: " + "; ".join(failures))

    async def _connect(self, endpoint: Endpoint) -> _Connection:
        assert self._nursery is not None, "Upstream.run must be running"
        with trio.fail_after(CONNECT_TIMEOUT):
            stream: trio.abc.Stream
            if endpoint.unix_path:
                stream = await trio.open_unix_socket(endpoint.unix_path)
            else:
                stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
            if endpoint.secure:
                context = self._tls or _default_tls()
                stream = trio.SSLStream(stream, context, server_hostname=endpoint.host)
                await stream.do_handshake()
            connection = _Connection(endpoint, stream)
            await connection.start()
        await self._nursery.start(connection.run)
        return connection

    @contextlib.asynccontextmanager
    async def open_call(self, path: str, metadata: dict[str, str]) -> AsyncIterator[UpstreamCall]:
        connection = await self._current()
        call = await connection.open(path, metadata)
        try:
            yield call
        finally:
            connection.reset(call)

    async def unary(self, path: str, message: bytes, metadata: dict[str, str]) -> bytes:
        async with self.open_call(path, metadata) as call:
            await call.send(message, end=True)
            reply = await call.receive()
            while await call.receive() is not None:
                pass
            if reply is None:
                raise EtcdError(StatusCode.INTERNAL, "upstream sent no response message")
            return reply

"""Watch coalescing: client watchers of the same key range share ONE upstream watch (etcd grpc-proxy's
watchBroadcast), whose events are fanned out to each of them.

Contracts:
- A ``Broadcast`` is one upstream Watch stream carrying one watch on [key, range_end), created with prev_kv and
  progress notifications (each receiver gets them only if it asked). It lives while it has receivers: the last
  one leaving ends it, and the upstream stream is reset.
- Broadcasts are per key range and caller credentials (the auth token the upstream watch carries).
- A watcher joins an existing broadcast of its range only if it misses nothing there: a "current" watcher
  (start revision 0) joins a broadcast that was itself started at "current" (so it is at the head of the
  store); a watcher from revision R joins a broadcast whose next revision is known and at most R. Otherwise
  it gets a broadcast of its own. Each receiver drops events older than its start revision, events its
  filters exclude, and prev_kv it did not ask for.
- A receiver that joins after the upstream watch was created gets a created response at once, with the
  header of the latest upstream response (etcd's proxy does the same).
- An upstream watch that breaks (UNAVAILABLE) is made again from the broadcast's next revision after
  ``RETRY_DELAY``; one the upstream cancels (compaction, permission) cancels every receiver with the same
  compact revision and reason.
- Delivery to a receiver never blocks (``Receiver.deliver``); a client stream that cannot keep up is closed
  by its owner, so one slow client never holds up the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge

from etcdx.errors import EtcdError, StatusCode
from etcdx.log import get_logger
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.mvccpb import kv_pb2
from etcdx.proxy.upstream import Upstream

log = get_logger("etcdx.proxy")

WATCH_PATH = "/etcdserverpb.Watch/Watch"
RETRY_DELAY = 0.5
_PUT = kv_pb2.Event.PUT
_NOPUT = rpc_pb2.WatchCreateRequest.NOPUT
_NODELETE = rpc_pb2.WatchCreateRequest.NODELETE


@dataclass(eq=False)
class Receiver:
    """One client watcher: its id on its client stream, what it asked for, and how to reach it."""

    watch_id: int
    key: bytes
    range_end: bytes
    start_revision: int
    prev_kv: bool
    progress_notify: bool
    filters: frozenset[int]
    deliver: Callable[[rpc_pb2.WatchResponse], None]
    broadcast: Broadcast | None = None

    def send_events(self, header: rpc_pb2.ResponseHeader, events) -> None:
        chosen = []
        for event in events:
            if event.kv.mod_revision < self.start_revision:
                continue
            if (_NOPUT if event.type == _PUT else _NODELETE) in self.filters:
                continue
            if not self.prev_kv and event.HasField("prev_kv"):
                event = kv_pb2.Event(type=event.type, kv=event.kv)
            chosen.append(event)
        if chosen:
            self.deliver(rpc_pb2.WatchResponse(header=header, watch_id=self.watch_id, events=chosen))


class WatchMetrics:
    """etcd grpc-proxy's coalescing series, in the proxy's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.watchers = Gauge(
            "etcd_grpc_proxy_watchers_coalescing_total",
            "Total number of current watchers coalescing",
            registry=registry,
        )
        self.events = Counter(
            "etcd_grpc_proxy_events_coalescing",
            "Total number of events coalescing",
            registry=registry,
        )
        self.upstream_watches = Gauge(
            "etcdx_grpc_proxy_upstream_watches",
            "Number of watches the proxy holds open upstream (one per coalesced key range and start)",
            registry=registry,
        )


@dataclass(eq=False)
class Broadcast:
    hub: WatchHub
    key: bytes
    range_end: bytes
    credentials: tuple[tuple[str, str], ...]
    from_current: bool
    next_revision: int  # 0 while a "current" broadcast has no created response yet
    receivers: set[Receiver] = field(default_factory=set)
    created: bool = False
    last_header: rpc_pb2.ResponseHeader | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    def accepts(self, receiver: Receiver) -> bool:
        if receiver.start_revision == 0:
            return self.from_current
        return self.next_revision != 0 and self.next_revision <= receiver.start_revision

    def add(self, receiver: Receiver) -> None:
        self.receivers.add(receiver)
        receiver.broadcast = self
        if self.created:
            receiver.deliver(rpc_pb2.WatchResponse(header=self.last_header, watch_id=receiver.watch_id, created=True))

    async def run(self) -> None:
        with self.scope:
            while self.receivers:
                try:
                    await self._watch_upstream()
                    return
                except EtcdError as exc:
                    if exc.code != StatusCode.UNAVAILABLE:
                        self._cancel_all(rpc_pb2.WatchResponse(canceled=True, cancel_reason=exc.message))
                        return
                    log.warning(
                        "upstream watch broke; retrying", key=self.key.decode("utf-8", "replace"), error=exc.message
                    )
                await trio.sleep(RETRY_DELAY)

    async def _watch_upstream(self) -> None:
        create = rpc_pb2.WatchCreateRequest(
            key=self.key,
            range_end=self.range_end,
            start_revision=self.next_revision,
            prev_kv=True,
            progress_notify=True,
        )
        async with self.hub.upstream.open_call(WATCH_PATH, dict(self.credentials)) as call:
            await call.send(rpc_pb2.WatchRequest(create_request=create).SerializeToString())
            async for data in call.responses():
                response = rpc_pb2.WatchResponse.FromString(data)
                if response.canceled:
                    self._cancel_all(response)
                    return
                self._on_response(response)
        raise EtcdError(StatusCode.UNAVAILABLE, "upstream watch stream ended")

    def _on_response(self, response: rpc_pb2.WatchResponse) -> None:
        header = response.header
        self.last_header = header
        if response.created:
            if self.next_revision == 0:
                self.next_revision = header.revision + 1
            if not self.created:
                self.created = True
                for receiver in list(self.receivers):
                    receiver.deliver(rpc_pb2.WatchResponse(header=header, watch_id=receiver.watch_id, created=True))
            return
        if response.events:
            self.next_revision = response.events[-1].kv.mod_revision + 1
            self.hub.metrics.events.inc(len(response.events) * max(0, len(self.receivers) - 1))
            for receiver in list(self.receivers):
                receiver.send_events(header, response.events)
            return
        self.next_revision = max(self.next_revision, header.revision + 1)
        for receiver in list(self.receivers):
            if receiver.progress_notify:
                receiver.deliver(rpc_pb2.WatchResponse(header=header, watch_id=receiver.watch_id))

    def _cancel_all(self, upstream: rpc_pb2.WatchResponse) -> None:
        for receiver in list(self.receivers):
            self.hub.remove(receiver)  # first: whoever the response reaches sees the watch gone
            receiver.deliver(
                rpc_pb2.WatchResponse(
                    header=upstream.header,
                    watch_id=receiver.watch_id,
                    created=not self.created,  # a watch refused at creation: created + canceled, as etcd
                    canceled=True,
                    compact_revision=upstream.compact_revision,
                    cancel_reason=upstream.cancel_reason,
                )
            )


class WatchHub:
    """Every broadcast by key range; run ``run`` in a nursery first (it holds the broadcasts' tasks)."""

    def __init__(self, upstream: Upstream, metrics: WatchMetrics) -> None:
        self.upstream = upstream
        self.metrics = metrics
        self._ranges: dict[tuple, list[Broadcast]] = {}  # (key, range_end, credentials) -> broadcasts
        self._nursery: trio.Nursery | None = None
        self._watchers = 0

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def add(self, receiver: Receiver, credentials: tuple[tuple[str, str], ...]) -> None:
        """Joins ``receiver`` to a broadcast of its range with the same ``credentials`` that accepts it, or to
        a new one."""
        assert self._nursery is not None, "WatchHub.run must be running"
        broadcasts = self._ranges.setdefault((receiver.key, receiver.range_end, credentials), [])
        broadcast = next((b for b in broadcasts if b.accepts(receiver)), None)
        if broadcast is None:
            broadcast = Broadcast(
                self,
                receiver.key,
                receiver.range_end,
                credentials,
                from_current=receiver.start_revision == 0,
                next_revision=receiver.start_revision,
            )
            broadcasts.append(broadcast)
            self._nursery.start_soon(self._run, broadcast)
        broadcast.add(receiver)
        self._watchers += 1
        self._publish()

    def remove(self, receiver: Receiver) -> None:
        broadcast = receiver.broadcast
        if broadcast is None:
            return
        receiver.broadcast = None
        broadcast.receivers.discard(receiver)
        self._watchers -= 1
        if not broadcast.receivers:
            broadcast.scope.cancel()
            self._forget(broadcast)
        self._publish()

    async def _run(self, broadcast: Broadcast) -> None:
        try:
            await broadcast.run()
        finally:
            for receiver in list(broadcast.receivers):
                self.remove(receiver)
            self._forget(broadcast)
            self._publish()

    def _forget(self, broadcast: Broadcast) -> None:
        key = (broadcast.key, broadcast.range_end, broadcast.credentials)
        broadcasts = self._ranges.get(key, [])
        if broadcast in broadcasts:
            broadcasts.remove(broadcast)
        if not broadcasts:
            self._ranges.pop(key, None)

    @property
    def broadcast_count(self) -> int:
        return sum(len(b) for b in self._ranges.values())

    def _publish(self) -> None:
        self.metrics.watchers.set(self._watchers - self.broadcast_count)
        self.metrics.upstream_watches.set(self.broadcast_count)

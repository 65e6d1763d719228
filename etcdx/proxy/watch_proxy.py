"""The proxy's Watch service: each client Watch stream's create and cancel requests become receivers of the
WatchHub's coalesced upstream watches (watch_broadcast.py).

Contracts:
- Watch ids are per client stream, as etcd assigns them: the id the client asks for, else the next free one
  of the stream's counter. An id in use, or an empty range, gets etcd's refusal (watch id -1, created and
  canceled, etcd's reason), without asking the upstream.
- Auth: watchers join only broadcasts of callers with the same credentials (forward.credentials), whose upstream
  watch carries them; so the upstream checks each watch as it checks its creator's, and its refusal comes
  back to each watcher as created + canceled with etcd's reason.
- Responses to a client wait in a queue of ``QUEUE_SIZE``; a client that lets it fill is disconnected
  (CANCELLED), so the broadcasts never wait for it.
- A progress request is answered at once, for the whole stream (watch id -1, as etcd), with the newest
  upstream header the stream's watches have seen: the proxy's watches are only as current as their upstream.
- When the client stream ends, every receiver it holds leaves its broadcast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from etcdx.api.grpc.codec import decode
from etcdx.api.grpc.watch import ERR_DUPLICATE_ID, ERR_EMPTY_RANGE
from etcdx.errors import EtcdError, StatusCode
from etcdx.net.grpc_server import BidiStreamMethod, RpcContext, Send
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.proxy.forward import credentials, upstream_metadata
from etcdx.proxy.namespace import Namespace
from etcdx.proxy.watch_broadcast import Receiver, WatchHub

QUEUE_SIZE = 4096
_CLIENT_TOO_SLOW = "etcdx grpc-proxy: watch client too slow to receive its events"


class _ClientStream:
    def __init__(self, outbox: trio.MemorySendChannel, scope: trio.CancelScope) -> None:
        self.outbox = outbox
        self.scope = scope
        self.receivers: dict[int, Receiver] = {}
        self.next_id = 0
        self.overrun = False

    def deliver(self, response: rpc_pb2.WatchResponse) -> None:
        if self.overrun:
            return
        if response.canceled:  # a watch its broadcast dropped (it left the hub first): the id is free again
            receiver = self.receivers.get(response.watch_id)
            if receiver is not None and receiver.broadcast is None:
                del self.receivers[response.watch_id]
        try:
            self.outbox.send_nowait(response)
        except trio.WouldBlock:
            self.overrun = True
            self.scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def latest_header(self) -> rpc_pb2.ResponseHeader:
        """The newest upstream header among this stream's watches (empty before any arrived)."""
        headers = [r.broadcast.last_header for r in self.receivers.values() if r.broadcast and r.broadcast.last_header]
        return max(headers, key=lambda h: h.revision, default=rpc_pb2.ResponseHeader())

    def take_id(self, wanted: int) -> int:
        """The id for a new watch (the caller checked that ``wanted``, if set, is free): ``wanted``, or the next
        id of the stream's counter that is free (etcd's order: ids are not reused while the counter moves on)."""
        if wanted:
            return wanted
        while self.next_id in self.receivers:
            self.next_id += 1
        self.next_id += 1
        return self.next_id - 1


class WatchProxy:
    def __init__(self, hub: WatchHub, namespace: Namespace) -> None:
        self._hub = hub
        self._namespace = namespace

    def methods(self) -> dict[str, BidiStreamMethod]:
        return {"/etcdserverpb.Watch/Watch": BidiStreamMethod(self.watch)}

    async def watch(self, messages: AsyncIterator[bytes], ctx: RpcContext, send: Send) -> None:
        outbox, inbox = trio.open_memory_channel(QUEUE_SIZE)
        metadata = upstream_metadata(ctx)
        with trio.CancelScope() as scope:
            client = _ClientStream(outbox, scope)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write, inbox, send)
                    async for data in messages:
                        await self._handle(client, decode(rpc_pb2.WatchRequest, data), metadata)
                    nursery.cancel_scope.cancel()
            finally:
                for receiver in client.receivers.values():
                    self._hub.remove(receiver)
        if client.overrun:
            raise EtcdError(StatusCode.CANCELLED, _CLIENT_TOO_SLOW)

    async def _write(self, inbox: trio.MemoryReceiveChannel, send: Send) -> None:
        namespace = self._namespace
        async for response in inbox:
            for event in response.events:
                namespace.strip_kv(event.kv)
                if event.HasField("prev_kv"):
                    namespace.strip_kv(event.prev_kv)
            await send(response.SerializeToString())

    async def _handle(self, client: _ClientStream, request: rpc_pb2.WatchRequest, metadata: dict[str, str]) -> None:
        kind = request.WhichOneof("request_union")
        if kind == "create_request":
            await self._create(client, request.create_request, metadata)
        elif kind == "cancel_request":
            receiver = client.receivers.pop(request.cancel_request.watch_id, None)
            if receiver is not None:
                self._hub.remove(receiver)
                client.deliver(rpc_pb2.WatchResponse(watch_id=receiver.watch_id, canceled=True))
        elif kind == "progress_request":
            client.deliver(rpc_pb2.WatchResponse(header=client.latest_header(), watch_id=-1))

    async def _create(
        self, client: _ClientStream, create: rpc_pb2.WatchCreateRequest, metadata: dict[str, str]
    ) -> None:
        end = b"" if create.range_end == b"\0" else create.range_end
        error = None
        if end and (create.key or b"\0") >= end:
            error = ERR_EMPTY_RANGE
        elif create.watch_id and create.watch_id in client.receivers:
            error = ERR_DUPLICATE_ID
        if error is not None:
            client.deliver(rpc_pb2.WatchResponse(watch_id=-1, created=True, canceled=True, cancel_reason=error))
            return
        watch_id = client.take_id(create.watch_id)
        key, range_end = self._namespace.range(create.key, create.range_end)
        receiver = Receiver(
            watch_id=watch_id,
            key=key,
            range_end=range_end,
            start_revision=create.start_revision,
            prev_kv=create.prev_kv,
            progress_notify=create.progress_notify,
            filters=frozenset(create.filters),
            deliver=client.deliver,
        )
        client.receivers[watch_id] = receiver
        self._hub.add(receiver, credentials(metadata))

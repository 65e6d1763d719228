"""etcdserverpb.Watch: one bidirectional stream carries many watchers (etcd 3.5's behaviour).

Per stream: a bounded queue of responses (control replies and events) drained by one sender task.
Control replies (created, canceled, progress) wait for room, so a reader that stops reading
back-pressures only its own stream; event delivery never waits: a watcher whose queue is full falls
back to catching up from history (see etcdx.mvcc.watch).

Refusals, as etcd 3.5.1 answers them: a create the stream's user (its token resolved anew) may not read the
whole range of, as sent (etcdx.auth.checks.check_watch), is answered created + canceled with the requested watch
id and DENIED_REASON (etcd's text of the gRPC error); then an empty range or a watch id already in use, with
watch id -1 and mvcc's error text.

Each watcher remembers the user it was created for; once auth is turned on or off or the auth revision moves,
the next events are sent only after every watcher of the stream is checked again as that user, and a watcher
refused then is canceled with DENIED_REASON, so a user who lost a permission (or was deleted) stops receiving
its keys' events (etcd 3.5.1 keeps sending them: docs/differences.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import trio

from etcdx import errors
from etcdx.api.grpc.auth_gate import who
from etcdx.api.grpc.codec import decode
from etcdx.auth import checks
from etcdx.mvcc.watch import Watcher
from etcdx.net.grpc_server import BidiStreamMethod, RpcContext, Send
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.server.internal_watch import ChannelSink
from etcdx.server.server import EtcdServer

QUEUE_CAPACITY = 128
ERR_EMPTY_RANGE = "mvcc: watcher range is empty"
ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
DENIED_REASON = f"rpc error: code = PermissionDenied desc = {errors.ERR_PERMISSION_DENIED.message}"
"""The cancel_reason of a watch refused for permission: etcd sends its gRPC error's Error() text."""
FRAGMENT_OVERHEAD = 512 * 1024
Create = rpc_pb2.WatchCreateRequest


class WatchService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server

    def methods(self) -> dict[str, BidiStreamMethod]:
        return {"/etcdserverpb.Watch/Watch": BidiStreamMethod(self.watch)}

    async def watch(self, requests: AsyncIterator[bytes], ctx: RpcContext, send: Send) -> None:
        server = self._server

        def permitted(key: bytes, range_end: bytes) -> str | None:
            """etcd's isWatchPermitted: the user the watch runs as ("" while auth is off) when the stream's
            user (its token resolved anew) may read the range; None when refused."""
            try:
                info = who(server, ctx)
                checks.check_watch(server.auth, info, key, range_end)
            except errors.EtcdError:
                return None
            return info.username if info is not None else ""

        stream = WatchStream(server, permitted)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.send_loop, send)
                async for data in requests:
                    await stream.handle(decode(rpc_pb2.WatchRequest, data))
                # A client that half-closes keeps receiving events until it cancels, as with etcd.
                await trio.sleep_forever()
        finally:
            stream.close()


class WatchStream(ChannelSink):
    """The WatchSink of every watcher created on one gRPC stream."""

    def __init__(
        self, server: EtcdServer, permitted: Callable[[bytes, bytes], str | None] = lambda key, end: ""
    ) -> None:
        self._server = server
        self._permitted = permitted
        self._grants: dict[int, tuple[str, bytes, bytes]] = {}  # watch id -> (user, key, range_end) as checked
        self._auth_state = _auth_state(server)
        self._revoked: set[int] = set()  # watch ids the recheck canceled: their queued events are dropped
        self._hub = server.watch_hub
        super().__init__(QUEUE_CAPACITY)
        self._watchers: dict[int, Watcher] = {}
        self._next_id = 0
        self._fragment_limit = server.settings.max_request_bytes + FRAGMENT_OVERHEAD

    # -- WatchSink (try_send and has_room from ChannelSink) ----------------------------------

    def watcher_gone(self, watcher: Watcher) -> None:
        self._watchers.pop(watcher.id, None)
        self._grants.pop(watcher.id, None)

    # -- requests ----------------------------------------------------------------------------

    async def handle(self, request: rpc_pb2.WatchRequest) -> None:
        kind = request.WhichOneof("request_union")
        if kind == "create_request":
            await self._create(request.create_request)
        elif kind == "cancel_request":
            await self._cancel(request.cancel_request.watch_id)
        elif kind == "progress_request":
            await self._reply(rpc_pb2.WatchResponse(watch_id=-1), self._server.current_revision)

    async def _reply(self, response: rpc_pb2.WatchResponse, revision: int) -> None:
        response.header.revision = revision
        await self.send.send(response)

    async def _create(self, create: rpc_pb2.WatchCreateRequest) -> None:
        key = create.key or b"\x00"
        end: bytes | None = create.range_end or None
        if end == b"\x00":
            end = b""
        current = self._server.current_revision
        refused_id, error = -1, None
        user = self._permitted(key, create.range_end)
        if user is None:
            refused_id, error = create.watch_id, DENIED_REASON
        elif end and key >= end:
            error = ERR_EMPTY_RANGE
        elif create.watch_id and create.watch_id in self._watchers:
            error = ERR_DUPLICATE_ID
        if error is not None:
            response = rpc_pb2.WatchResponse(watch_id=refused_id, created=True, canceled=True, cancel_reason=error)
            await self._reply(response, current)
            return
        watch_id = create.watch_id
        if not watch_id:
            while self._next_id in self._watchers:
                self._next_id += 1
            watch_id = self._next_id
            self._next_id += 1
        watcher = Watcher(
            watch_id,
            key,
            end,
            self,
            no_put=Create.NOPUT in create.filters,
            no_delete=Create.NODELETE in create.filters,
            prev_kv=create.prev_kv,
            progress_notify=create.progress_notify,
            fragment=create.fragment,
        )
        self._watchers[watch_id] = watcher
        self._grants[watch_id] = (user, key, create.range_end)
        self._revoked.discard(watch_id)
        await self._reply(rpc_pb2.WatchResponse(watch_id=watch_id, created=True), current)
        # Start 0 means "after the revision in the created reply": writes applied while that reply was
        # queued must still reach this watcher, so it starts from the revision read above.
        self._hub.add(watcher, create.start_revision or current + 1)
        if not watcher.synced:
            self._server.request_watch_sync()

    async def _cancel(self, watch_id: int) -> None:
        watcher = self._watchers.pop(watch_id, None)
        if watcher is None:
            return  # unknown IDs are ignored without a reply, as etcd does
        self._grants.pop(watch_id, None)
        self._hub.remove(watcher)
        await self._reply(rpc_pb2.WatchResponse(watch_id=watch_id, canceled=True), self._server.current_revision)

    # -- sending -----------------------------------------------------------------------------

    async def send_loop(self, send: Send) -> None:
        fill = self._server.fill_identity
        async for response in self.receive:
            if response.events:
                if _auth_state(self._server) != self._auth_state:
                    await self._recheck(send)
                if response.watch_id in self._revoked:
                    continue  # canceled by the recheck: its user may not see these events any more
            fill(response.header)
            watcher = self._watchers.get(response.watch_id)
            if watcher is not None and watcher.fragment and len(response.events) > 1:
                for part in self._fragments(response):
                    await send(part.SerializeToString())
            else:
                await send(response.SerializeToString())

    async def _recheck(self, send: Send) -> None:
        """Checks every watcher again as its user at the current auth revision; cancels the refused ones."""
        auth = self._server.auth
        self._auth_state = _auth_state(self._server)
        for watch_id, (user, key, range_end) in list(self._grants.items()):
            try:
                checks.check_watch(auth, auth.auth_info_for(user), key, range_end)
            except errors.EtcdError:
                watcher = self._watchers.pop(watch_id, None)
                del self._grants[watch_id]
                self._revoked.add(watch_id)
                if watcher is not None:
                    self._hub.remove(watcher)
                response = rpc_pb2.WatchResponse(watch_id=watch_id, canceled=True, cancel_reason=DENIED_REASON)
                response.header.revision = self._server.current_revision
                self._server.fill_identity(response.header)
                await send(response.SerializeToString())

    def _fragments(self, response: rpc_pb2.WatchResponse) -> list[rpc_pb2.WatchResponse]:
        """Splits an oversized event response; every part but the last carries fragment=true."""
        if response.ByteSize() <= self._fragment_limit:
            return [response]
        parts: list[rpc_pb2.WatchResponse] = []
        current = None
        for event in response.events:
            if current is None or (current.events and current.ByteSize() + event.ByteSize() > self._fragment_limit):
                current = rpc_pb2.WatchResponse(header=response.header, watch_id=response.watch_id, fragment=True)
                parts.append(current)
            current.events.add().CopyFrom(event)
        parts[-1].fragment = False
        return parts

    def close(self) -> None:
        for watcher in self._watchers.values():
            self._hub.remove(watcher)
        self._watchers.clear()
        self._grants.clear()


def _auth_state(server: EtcdServer) -> tuple[bool, int]:
    """What a change of makes every watcher's permission worth checking again."""
    auth = server.auth
    return (auth.enabled, auth.revision) if auth is not None else (False, 0)

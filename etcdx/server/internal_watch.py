"""Watching the store from inside the server (for the Lock and Election recipes).

Same hub and guarantees as a client's watch; the sink is a bounded channel, so a slow consumer
falls back to history catch-up like any other watcher.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from etcdx.mvcc.watch import Watcher
from etcdx.pb.etcdserverpb import rpc_pb2

CAPACITY = 64


class ChannelSink:
    """A WatchSink over a bounded trio channel: ``send`` feeds it, ``receive`` drains it."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.send, self.receive = trio.open_memory_channel(capacity)

    def try_send(self, response: rpc_pb2.WatchResponse) -> bool:
        try:
            self.send.send_nowait(response)
        except trio.WouldBlock:
            return False
        return True

    def has_room(self) -> bool:
        stats = self.send.statistics()
        return stats.current_buffer_used < stats.max_buffer_size

    def watcher_gone(self, watcher: Watcher) -> None:
        self.send.close()

    def watcher_synced(self, watcher: Watcher) -> None:
        pass


@asynccontextmanager
async def watch(server, key: bytes, end: bytes | None, start_revision: int) -> AsyncIterator[trio.MemoryReceiveChannel]:
    """Yields a channel of WatchResponses for [key, end) from ``start_revision``; stops on exit.

    A compaction past the start ends the channel after the compacted response."""
    sink = ChannelSink()
    watcher = Watcher(-1, key, end, sink)
    server.watch_hub.add(watcher, start_revision)
    if not watcher.synced:
        server.request_watch_sync()
    try:
        yield sink.receive
    finally:
        server.watch_hub.remove(watcher)

"""A watch stream stand-in for in-process WatchHub tests: it keeps every response it is sent and always has room."""

from __future__ import annotations

from etcdx.mvcc.watch import Watcher
from etcdx.pb.etcdserverpb import rpc_pb2 as pb


class Sink:
    def __init__(self) -> None:
        self.responses: list[pb.WatchResponse] = []

    def try_send(self, response: pb.WatchResponse) -> bool:
        self.responses.append(response)
        return True

    def has_room(self) -> bool:
        return True

    def watcher_gone(self, watcher: Watcher) -> None:
        pass

    def watcher_synced(self, watcher: Watcher) -> None:
        pass

"""Watchers of the v2 store (etcd's watcherHub). Pure: a watcher queues the events it gets and calls its
``wake`` callback, which the API layer sets to wake the task that sends them.

Matching (as etcd): a watcher at path P gets an event at P; a recursive one also gets events below P unless
the part below P is hidden (a component starting with "_"); deleting or expiring a directory notifies the
watchers of every node removed with it. A one-shot watcher is removed after its first event; a stream
watcher whose queue (100 events) is full is closed.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Callable

from etcdx.v2store.errors import V2Error
from etcdx.v2store.events import Event, EventHistory

QUEUE_CAPACITY = 100


class Watcher:
    __slots__ = ("events", "recursive", "stream", "since_index", "start_index", "closed", "wake", "_hub", "_key")

    def __init__(self, hub: WatcherHub | None, key: str, recursive: bool, stream: bool, since: int, start: int):
        self.events: deque[Event] = deque()
        self.recursive = recursive
        self.stream = stream
        self.since_index = since
        self.start_index = start  # the store index when the watch began (X-Etcd-Index)
        self.closed = False  # no more events will come (removed after overflow)
        self.wake: Callable[[], None] = lambda: None
        self._hub = hub
        self._key = key

    def _offer(self, event: Event, original_path: bool, deleted: bool) -> bool:
        if not ((self.recursive or original_path or deleted) and event.index >= self.since_index):
            return False
        if len(self.events) >= QUEUE_CAPACITY:
            self.remove()
        else:
            self.events.append(event)
        self.wake()
        return True

    def remove(self) -> None:
        """Stops the watcher (the client went, or its queue overflowed)."""
        if self._hub is not None:
            self._hub.discard(self._key, self)
            self._hub = None
        self.closed = True
        self.wake()


def _is_hidden(watch_path: str, key_path: str) -> bool:
    if len(watch_path) > len(key_path):
        return False
    return "/_" in posixpath.normpath("/" + key_path[len(watch_path) :])


class WatcherHub:
    def __init__(self) -> None:
        self._watchers: dict[str, list[Watcher]] = {}
        self.count = 0
        self.history = EventHistory()

    def watch(self, key: str, recursive: bool, stream: bool, since: int, store_index: int) -> Watcher:
        """A watcher from ``since``: holding the first matching event of the history if there is one (it is
        then not registered, as in etcd, even for a stream), else registered for what comes."""
        try:
            event = self.history.scan(key, recursive, since)
        except V2Error as exc:
            exc.index = store_index
            raise
        if event is not None:
            watcher = Watcher(None, key, recursive, stream, since, store_index)
            found = event.clone()
            found.etcd_index = store_index
            watcher.events.append(found)
            return watcher
        watcher = Watcher(self, key, recursive, stream, since, store_index)
        self._watchers.setdefault(key, []).append(watcher)
        self.count += 1
        return watcher

    def discard(self, key: str, watcher: Watcher) -> None:
        watchers = self._watchers.get(key)
        if watchers is not None and watcher in watchers:
            watchers.remove(watcher)
            self.count -= 1
            if not watchers:
                del self._watchers[key]

    def record(self, event: Event) -> None:
        """Adds ``event`` to the history without notifying anyone (a TTL refresh)."""
        self.history.add(event)

    def notify(self, event: Event) -> None:
        """Records ``event`` and notifies the watchers of its key and of every ancestor."""
        self.history.add(event)
        current = "/"
        for segment in event.node.key.split("/"):
            current = posixpath.join(current, segment)
            self.notify_path(event, current, False)

    def notify_path(self, event: Event, path: str, deleted: bool) -> None:
        watchers = self._watchers.get(path)
        if not watchers:
            return
        original = event.node.key == path
        for watcher in list(watchers):
            visible = original or not _is_hidden(path, event.node.key)
            if visible and watcher._offer(event, original, deleted) and not watcher.stream and not watcher.closed:
                watchers.remove(watcher)
                watcher._hub = None
                self.count -= 1
        if not watchers:
            self._watchers.pop(path, None)

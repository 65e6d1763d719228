"""What the v2 store answers: events (action, node, prevNode) and the nodes they show (etcd's NodeExtern),
and the history of the last 1000 events that watchers with a waitIndex read from."""

from __future__ import annotations

import datetime

from etcdx.v2store.errors import EVENT_INDEX_CLEARED, V2Error
from etcdx.v2store.gojson import encode

GET = "get"
CREATE = "create"
SET = "set"
UPDATE = "update"
DELETE = "delete"
COMPARE_AND_SWAP = "compareAndSwap"
COMPARE_AND_DELETE = "compareAndDelete"
EXPIRE = "expire"

HISTORY_CAPACITY = 1000


def format_time(unix_ns: int) -> str:
    """Go's RFC 3339 with nanoseconds (time.RFC3339Nano) in UTC: trailing zeros of the fraction dropped."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    text = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


class NodeView:
    """A node as a response shows it. ``value`` None: no value field (directories, delete events);
    ``expiration`` None: permanent; ``nodes`` None or empty: no nodes field."""

    __slots__ = ("key", "value", "dir", "expiration", "ttl", "nodes", "modified_index", "created_index")

    def __init__(self, key: str, modified_index: int = 0, created_index: int = 0) -> None:
        self.key = key
        self.value: str | None = None
        self.dir = False
        self.expiration: int | None = None
        self.ttl = 0
        self.nodes: list[NodeView] | None = None
        self.modified_index = modified_index
        self.created_index = created_index

    def fields(self, trim: str) -> dict[str, object]:
        """The JSON object, with ``trim`` removed from the front of every key (Go's omitempty rules)."""
        out: dict[str, object] = {}
        key = self.key[len(trim) :] if trim and self.key.startswith(trim) else self.key
        if key:
            out["key"] = key
        if self.value is not None:
            out["value"] = self.value
        if self.dir:
            out["dir"] = True
        if self.expiration is not None:
            out["expiration"] = format_time(self.expiration)
        if self.ttl:
            out["ttl"] = self.ttl
        if self.nodes:
            out["nodes"] = [node.fields(trim) for node in self.nodes]
        if self.modified_index:
            out["modifiedIndex"] = self.modified_index
        if self.created_index:
            out["createdIndex"] = self.created_index
        return out


class Event:
    """One store event. ``etcd_index`` is the store index the answer reports (X-Etcd-Index); ``refresh``
    marks a TTL refresh, which is kept in the history but never shown to watchers."""

    __slots__ = ("action", "node", "prev_node", "etcd_index", "refresh")

    def __init__(self, action: str, key: str, modified_index: int, created_index: int) -> None:
        self.action = action
        self.node = NodeView(key, modified_index, created_index)
        self.prev_node: NodeView | None = None
        self.etcd_index = 0
        self.refresh = False

    @property
    def index(self) -> int:
        return self.node.modified_index

    @property
    def is_created(self) -> bool:
        """True when the answer is 201 Created: a create, or a set that made a new node."""
        return self.action == CREATE or (self.action == SET and self.prev_node is None)

    def clone(self) -> Event:
        copy = Event.__new__(Event)
        copy.action, copy.node, copy.prev_node = self.action, self.node, self.prev_node
        copy.etcd_index, copy.refresh = self.etcd_index, self.refresh
        return copy

    def body(self, trim: str = "", value_on_success: bool = True) -> bytes:
        """The JSON body etcd writes for this event, newline-terminated. Without ``value_on_success`` a
        successful write shows only its action (noValueOnSuccess)."""
        out: dict[str, object] = {"action": self.action}
        if value_on_success or self.action not in (SET, COMPARE_AND_SWAP, CREATE, UPDATE):
            out["node"] = self.node.fields(trim)
            if self.prev_node is not None:
                out["prevNode"] = self.prev_node.fields(trim)
        return encode(out) + b"\n"


class EventHistory:
    """The last HISTORY_CAPACITY events. Every store index past the first kept one has exactly one event
    here (each mutation takes one index and records one event), so index -> position is arithmetic."""

    def __init__(self, capacity: int = HISTORY_CAPACITY) -> None:
        self._events: list[Event | None] = [None] * capacity
        self._capacity = capacity
        self._front = 0
        self._count = 0
        self.start_index = 0
        self.last_index = 0

    def add(self, event: Event) -> None:
        position = (self._front + self._count) % self._capacity
        self._events[position] = event
        if self._count == self._capacity:
            self._front = (self._front + 1) % self._capacity
        else:
            self._count += 1
        self.last_index = event.index
        self.start_index = self._events[self._front].index

    def scan(self, key: str, recursive: bool, index: int) -> Event | None:
        """The first event at or after ``index`` that a watcher of ``key`` sees, or None (not happened yet).
        Raises 401 when ``index`` is older than the oldest kept event."""
        if index < self.start_index:
            raise V2Error(
                EVENT_INDEX_CLEARED, f"the requested history has been cleared [{self.start_index}/{index}]", 0
            )
        if index > self.last_index:
            return None
        prefix = key if key.endswith("/") else key + "/"
        for offset in range(index - self.start_index, self._count):
            event = self._events[(self._front + offset) % self._capacity]
            if event.refresh:
                continue
            event_key = event.node.key
            if event_key == key or (recursive and event_key.startswith(prefix)):
                return event
            prev = event.prev_node
            if event.action in (DELETE, EXPIRE) and prev is not None and prev.dir and key.startswith(prev.key):
                return event
        return None

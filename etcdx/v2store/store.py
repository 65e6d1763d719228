"""The v2 store (etcd 3.4's v2store): a tree of directories and values under "/", with TTLs, a store index
that every mutation increments by one, the event history and the watchers.

Pure: time comes in as ``now`` (Unix nanoseconds) on every call that shows or removes expiring nodes, and
expiry happens only through ``delete_expired(cutoff)``, which the log applies (etcd's SYNC request), so all
members remove the same nodes at the same index. Mutations are applied through ``apply``.
Invariants: ``current_index`` equals the index of the last event recorded; a node with an expiry is in the
TTL heap (stale heap entries are skipped when they surface); "/" and the namespace roots are read-only.
"""

from __future__ import annotations

import heapq
import itertools
import posixpath

from etcdx.pb.etcdserverpb.rpc_pb2 import ResponseHeader
from etcdx.v2store import errors as e
from etcdx.v2store.errors import V2Error
from etcdx.v2store.events import (
    COMPARE_AND_DELETE,
    COMPARE_AND_SWAP,
    CREATE,
    DELETE,
    EXPIRE,
    GET,
    SET,
    UPDATE,
    Event,
    NodeView,
)
from etcdx.v2store.stats import StoreStats
from etcdx.v2store.watchers import Watcher, WatcherHub

# etcd treats an expiry before 2000-01-01 as "permanent" (a zero time that went through JSON).
MIN_EXPIRE_NS = 946_684_800 * 1_000_000_000


def clean(path: str) -> str:
    """Go's path.Clean(path.Join("/", path))."""
    return posixpath.normpath("/" + path).replace("//", "/")


class Node:
    __slots__ = ("path", "created_index", "modified_index", "parent", "expire_time", "value", "children", "heap_seq")

    def __init__(self, path: str, created: int, parent: Node | None, expire: int | None, value: str = "", is_dir=False):
        self.path = path
        self.created_index = created
        self.modified_index = created
        self.parent = parent
        self.expire_time = expire  # Unix ns, or None: permanent
        self.value = value
        self.children: dict[str, Node] | None = {} if is_dir else None
        self.heap_seq = 0  # the live TTL heap entry's sequence number (0: none)

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]

    @property
    def is_hidden(self) -> bool:
        return self.name.startswith("_")

    def expiration_and_ttl(self, now: int) -> tuple[int | None, int]:
        """The expiry and remaining whole seconds as etcd shows them: rounded up, truncated toward zero once
        past (an expired node the log has not removed yet shows 0 or less)."""
        if self.expire_time is None:
            return None, 0
        left = self.expire_time - now
        ttl = abs(left) // 1_000_000_000 * (1 if left >= 0 else -1)
        if left > 0 and left % 1_000_000_000:
            ttl += 1
        return self.expire_time, ttl

    def view(self, now: int, recursive: bool, sort: bool) -> NodeView:
        """etcd's Repr: a directory lists its visible children only when ``recursive``."""
        view = NodeView(self.path, self.modified_index, self.created_index)
        view.expiration, view.ttl = self.expiration_and_ttl(now)
        if not self.is_dir:
            view.value = self.value
            return view
        view.dir = True
        if recursive:
            view.nodes = self.child_views(now, True, sort)
        return view

    def child_views(self, now: int, recursive: bool, sort: bool) -> list[NodeView]:
        views = [child.view(now, recursive, sort) for child in self.children.values() if not child.is_hidden]
        if sort:
            views.sort(key=lambda view: view.key)
        return views


class V2Store:
    """The store. ``read_only`` paths cannot be written or deleted (etcd's "/" plus its namespaces)."""

    def __init__(self, namespaces: tuple[str, ...] = ()) -> None:
        self.root = Node("/", 0, None, None, is_dir=True)
        for namespace in namespaces:
            self.root.children[namespace.strip("/")] = Node(namespace, 0, self.root, None, is_dir=True)
        self.read_only = frozenset(["/", *namespaces])
        self.current_index = 0
        self.applied_index = 0  # the log index of the last request applied
        self.changed = False  # a request was applied since the state was last taken (bootstrap.state_if_changed)
        self.restored = False  # loaded from a saved state (the member publishes its attributes again)
        self.hub = WatcherHub()
        self.stats = StoreStats()
        self._ttl_heap: list[tuple[int, int, Node]] = []
        self._heap_seq = itertools.count(1)

    # -- TTL heap --------------------------------------------------------------------------------

    def _ttl_push(self, node: Node) -> None:
        node.heap_seq = next(self._heap_seq)
        heapq.heappush(self._ttl_heap, (node.expire_time, node.heap_seq, node))

    def _ttl_drop(self, node: Node) -> None:
        node.heap_seq = 0

    def _ttl_top(self) -> Node | None:
        heap = self._ttl_heap
        while heap and heap[0][2].heap_seq != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][2] if heap else None

    @property
    def has_ttl_nodes(self) -> bool:
        return self._ttl_top() is not None

    def _update_ttl(self, node: Node, expire: int | None) -> None:
        node.expire_time = expire
        if expire is None:
            self._ttl_drop(node)
        else:
            self._ttl_push(node)

    # -- tree walking ----------------------------------------------------------------------------

    def _get(self, path: str) -> Node:
        current = self.root
        for name in path.split("/")[1:]:
            if not name:
                break
            if not current.is_dir:
                raise V2Error(e.NOT_DIR, current.path, self.current_index)
            child = current.children.get(name)
            if child is None:
                raise V2Error(e.KEY_NOT_FOUND, posixpath.join(current.path, name), self.current_index)
            current = child
        return current

    def _make_dirs(self, dir_path: str) -> Node:
        """The directory at ``dir_path``, creating missing ones (at the next index, as etcd stamps them)."""
        current = self.root
        for name in dir_path.split("/")[1:]:
            if not name:
                break
            child = current.children.get(name)
            if child is None:
                child = Node(posixpath.join(current.path, name), self.current_index + 1, current, None, is_dir=True)
                current.children[name] = child
            elif not child.is_dir:
                raise V2Error(e.NOT_DIR, child.path, self.current_index)
            current = child
        return current

    def _remove(self, node: Node, with_dirs: bool, recursive: bool, removed: list[str]) -> None:
        """etcd's node.Remove; ``removed`` collects the removed paths (children before their directory)."""
        if node.is_dir:
            if not with_dirs:
                raise V2Error(e.NOT_FILE, node.path, self.current_index)
            if node.children and not recursive:
                raise V2Error(e.DIR_NOT_EMPTY, node.path, self.current_index)
            for child in list(node.children.values()):
                self._remove(child, True, True, removed)
        parent = node.parent
        if parent is not None and parent.children.get(node.name) is node:
            del parent.children[node.name]
            removed.append(node.path)
            if node.expire_time is not None:
                self._ttl_drop(node)

    def _notify_removed(self, event: Event, removed: list[str]) -> None:
        for path in removed:
            self.hub.notify_path(event, path, True)

    # -- reads -----------------------------------------------------------------------------------

    def get(self, path: str, recursive: bool, sort: bool, now: int) -> Event:
        path = clean(path)
        try:
            node = self._get(path)
        except V2Error:
            self.stats.gets_fail += 1
            raise
        self.stats.gets_success += 1
        event = Event(GET, path, node.modified_index, node.created_index)
        event.etcd_index = self.current_index
        view = event.node
        view.expiration, view.ttl = node.expiration_and_ttl(now)
        if node.is_dir:
            view.dir = True
            view.nodes = node.child_views(now, recursive, sort)
        else:
            view.value = node.value
        return event

    def watch(self, path: str, recursive: bool, stream: bool, since: int) -> Watcher:
        """A watcher from ``since`` (0: from the next index); 401 when ``since`` left the history."""
        return self.hub.watch(clean(path), recursive, stream, since or self.current_index + 1, self.current_index)

    # -- writes ----------------------------------------------------------------------------------

    def _check_writable(self, path: str) -> None:
        if path in self.read_only:
            raise V2Error(e.ROOT_READ_ONLY, "/", self.current_index)

    def _create(
        self, path: str, is_dir: bool, value: str, unique: bool, replace: bool, expire: int | None, action: str, now
    ) -> Event:
        index = self.current_index + 1
        if unique:
            path += "/" + f"{index:020d}"
        path = clean(path)
        self._check_writable(path)
        if expire is not None and expire < MIN_EXPIRE_NS:
            expire = None
        dir_path, name = path.rsplit("/", 1)
        parent = self._make_dirs(dir_path)
        event = Event(action, path, index, index)
        existing = parent.children.get(name)
        if existing is not None:
            if not replace:
                raise V2Error(e.NODE_EXIST, path, self.current_index)
            if existing.is_dir:
                raise V2Error(e.NOT_FILE, path, self.current_index)
            event.prev_node = existing.view(now, False, False)
            self._remove(existing, False, False, [])
        node = Node(path, index, parent, expire, value, is_dir)
        if is_dir:
            event.node.dir = True
        else:
            event.node.value = value
        parent.children[name] = node
        if expire is not None:
            self._ttl_push(node)
            event.node.expiration, event.node.ttl = node.expiration_and_ttl(now)
        self.current_index = index
        return event

    def set(self, path: str, is_dir: bool, value: str, expire: int | None, refresh: bool, now: int) -> Event:
        path = clean(path)
        try:
            try:
                previous = self._get(path)
            except V2Error as exc:
                if exc.code != e.KEY_NOT_FOUND or refresh:
                    raise
                previous = None
            if refresh:
                value = previous.value
            event = self._create(path, is_dir, value, False, True, expire, SET, now)
        except V2Error:
            self.stats.sets_fail += 1
            raise
        event.etcd_index = self.current_index
        if previous is not None:
            event.prev_node = previous.view(now, False, False)
        self._publish(event, refresh)
        self.stats.sets_success += 1
        return event

    def create(self, path: str, is_dir: bool, value: str, unique: bool, expire: int | None, now: int) -> Event:
        try:
            event = self._create(path, is_dir, value, unique, False, expire, CREATE, now)
        except V2Error:
            self.stats.create_fail += 1
            raise
        event.etcd_index = self.current_index
        self.hub.notify(event)
        self.stats.create_success += 1
        return event

    def update(self, path: str, value: str, expire: int | None, refresh: bool, now: int) -> Event:
        path = clean(path)
        try:
            self._check_writable(path)
            node = self._get(path)
            if node.is_dir and value:
                raise V2Error(e.NOT_FILE, path, self.current_index)
        except V2Error:
            self.stats.update_fail += 1
            raise
        if refresh:
            value = node.value
        index = self.current_index + 1
        event = Event(UPDATE, path, index, node.created_index)
        event.etcd_index = index
        event.prev_node = node.view(now, False, False)
        if node.is_dir:  # etcd's Write refuses a directory: its modifiedIndex stays, the event shows the new one
            event.node.dir = True
        else:
            node.value = value
            node.modified_index = index
            event.node.value = value
        self._update_ttl(node, expire)
        event.node.expiration, event.node.ttl = node.expiration_and_ttl(now)
        self.current_index = index
        self._publish(event, refresh)
        self.stats.update_success += 1
        return event

    def _compare(self, node: Node, prev_value: str, prev_index: int) -> None:
        index_ok = prev_index == 0 or node.modified_index == prev_index
        value_ok = prev_value == "" or node.value == prev_value
        if index_ok and value_ok:
            return
        if index_ok:
            cause = f"[{prev_value} != {node.value}]"
        elif value_ok:
            cause = f"[{prev_index} != {node.modified_index}]"
        else:
            cause = f"[{prev_value} != {node.value}] [{prev_index} != {node.modified_index}]"
        raise V2Error(e.TEST_FAILED, cause, self.current_index)

    def compare_and_swap(
        self, path: str, prev_value: str, prev_index: int, value: str, expire: int | None, refresh: bool, now: int
    ) -> Event:
        path = clean(path)
        try:
            self._check_writable(path)
            node = self._get(path)
            if node.is_dir:
                raise V2Error(e.NOT_FILE, path, self.current_index)
            self._compare(node, prev_value, prev_index)
        except V2Error:
            self.stats.compare_and_swap_fail += 1
            raise
        if refresh:
            value = node.value
        self.current_index += 1
        event = Event(COMPARE_AND_SWAP, path, self.current_index, node.created_index)
        event.etcd_index = self.current_index
        event.prev_node = node.view(now, False, False)
        node.value = value
        node.modified_index = self.current_index
        self._update_ttl(node, expire)
        event.node.value = value
        event.node.expiration, event.node.ttl = node.expiration_and_ttl(now)
        self._publish(event, refresh)
        self.stats.compare_and_swap_success += 1
        return event

    def delete(self, path: str, is_dir: bool, recursive: bool, now: int) -> Event:
        path = clean(path)
        try:
            self._check_writable(path)
            node = self._get(path)
            index = self.current_index + 1
            event = Event(DELETE, path, index, node.created_index)
            event.etcd_index = index
            event.prev_node = node.view(now, False, False)
            event.node.dir = node.is_dir
            removed: list[str] = []
            self._remove(node, is_dir or recursive, recursive, removed)
        except V2Error:
            self.stats.delete_fail += 1
            raise
        self.current_index = index
        self._notify_removed(event, removed)
        self.hub.notify(event)
        self.stats.delete_success += 1
        return event

    def compare_and_delete(self, path: str, prev_value: str, prev_index: int, now: int) -> Event:
        path = clean(path)
        try:
            node = self._get(path)
            if node.is_dir:
                raise V2Error(e.NOT_FILE, path, self.current_index)
            self._compare(node, prev_value, prev_index)
        except V2Error:
            self.stats.compare_and_delete_fail += 1
            raise
        self.current_index += 1
        event = Event(COMPARE_AND_DELETE, path, self.current_index, node.created_index)
        event.etcd_index = self.current_index
        event.prev_node = node.view(now, False, False)
        removed: list[str] = []
        self._remove(node, False, False, removed)
        self._notify_removed(event, removed)
        self.hub.notify(event)
        self.stats.compare_and_delete_success += 1
        return event

    def delete_expired(self, cutoff: int, now: int) -> list[Event]:
        """Removes every node whose expiry is at or before ``cutoff``, one expire event (and index) each."""
        events = []
        while (node := self._ttl_top()) is not None and node.expire_time <= cutoff:
            self.current_index += 1
            event = Event(EXPIRE, node.path, self.current_index, node.created_index)
            event.etcd_index = self.current_index
            event.prev_node = node.view(now, False, False)
            event.node.dir = node.is_dir
            self._ttl_drop(node)
            removed: list[str] = []
            self._remove(node, True, True, removed)
            self._notify_removed(event, removed)
            self.stats.expire_count += 1
            self.hub.notify(event)
            events.append(event)
        return events

    def _publish(self, event: Event, refresh: bool) -> None:
        if refresh:
            event.refresh = True
            self.hub.record(event)
        else:
            self.hub.notify(event)

    # -- the log's entry point -------------------------------------------------------------------

    def apply(self, request, index: int, now: int) -> V2Result | None:
        """Applies a committed V2Request (etcd's applierV2) at log ``index``; ``now`` (Unix ns) only shapes
        the TTLs the answer shows. Returns the event (or the V2Error) as a V2Result; never raises for what
        the request holds. An index at or below the last applied one was applied before: None.
        """
        if index <= self.applied_index:
            return None
        self.applied_index = index
        expire = request.expiration or None
        try:
            method = request.method
            if method == "SYNC":
                expired = self.delete_expired(request.time, now)
                self.changed = self.changed or bool(expired)
                return V2Result(events=expired)
            self.changed = True  # even a failed write may have left directories it created on its way
            if method == "POST":
                event = self.create(request.path, request.dir, request.value, True, expire, now)
            elif method == "DELETE":
                if request.prev_index or request.prev_value:
                    event = self.compare_and_delete(request.path, request.prev_value, request.prev_index, now)
                else:
                    event = self.delete(request.path, request.dir, request.recursive, now)
            elif method == "PUT":
                event = self._put(request, expire, now)
            else:
                raise V2Error(e.RAFT_INTERNAL, "etcdserver: unknown method", self.current_index)
        except V2Error as exc:
            return V2Result(error=exc)
        return V2Result(events=[event])

    def _put(self, request, expire: int | None, now: int) -> Event:
        refresh = request.refresh
        if request.HasField("prev_exist"):
            if request.prev_exist:
                if request.prev_index == 0 and request.prev_value == "":
                    return self.update(request.path, request.value, expire, refresh, now)
                return self.compare_and_swap(
                    request.path, request.prev_value, request.prev_index, request.value, expire, refresh, now
                )
            return self.create(request.path, request.dir, request.value, False, expire, now)
        if request.prev_index or request.prev_value:
            return self.compare_and_swap(
                request.path, request.prev_value, request.prev_index, request.value, expire, refresh, now
            )
        return self.set(request.path, request.dir, request.value, expire, refresh, now)


class V2Result:
    """A v2 write's answer: its events (one; a SYNC's expire events, possibly none) or its error. ``header``
    is filled by the server (term, revision) as for every proposal's answer."""

    __slots__ = ("events", "error", "header")

    def __init__(self, events: list[Event] | None = None, error: V2Error | None = None) -> None:
        self.events = events or []
        self.error = error
        self.header = ResponseHeader()

"""Watchers and the hub that feeds them (etcd's watchableStore: synced and unsynced groups). Pure.

Contract: a watcher sees every event of its range with revision >= its start, in revision order,
each exactly once, all events of one revision in one response (catch-up responses may hold many
revisions). A synced watcher is at the head: ``notify`` hands it each new revision's events. When its
sink is full it becomes unsynced ("victim") at the revision it missed; ``sync`` later replays history
from the backend until it is at the head again. Memory per watcher is bounded by its sink; nothing
is dropped silently. A watcher whose next revision was compacted gets one compacted response and
is removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.mvccpb import kv_pb2

if TYPE_CHECKING:
    from etcdx.mvcc.kvstore import KVStore

PUT, DELETE = kv_pb2.Event.PUT, kv_pb2.Event.DELETE
MAX_REVISIONS_PER_CATCH_UP = 1000


class WatchSink(Protocol):
    def try_send(self, response: rpc_pb2.WatchResponse) -> bool:
        """Queues ``response`` without blocking; False when the queue is full."""

    def has_room(self) -> bool:
        """Whether ``try_send`` would take a response now."""

    def watcher_gone(self, watcher: Watcher) -> None:
        """The hub removed ``watcher`` on its own (compaction)."""

    def watcher_synced(self, watcher: Watcher) -> None:
        """``sync`` brought ``watcher`` to the head: every event it was due up to the current revision has gone to
        this sink."""


class Watcher:
    __slots__ = (
        "id",
        "key",
        "end",
        "no_put",
        "no_delete",
        "prev_kv",
        "progress_notify",
        "fragment",
        "sink",
        "next_rev",
        "synced",
        "sent_since_progress",
    )

    def __init__(
        self,
        watch_id: int,
        key: bytes,
        end: bytes | None,
        sink: WatchSink,
        *,
        no_put: bool = False,
        no_delete: bool = False,
        prev_kv: bool = False,
        progress_notify: bool = False,
        fragment: bool = False,
    ) -> None:
        self.id = watch_id
        self.key = key
        self.end = end  # None: the single key; b"": every key >= key
        self.sink = sink
        self.no_put = no_put
        self.no_delete = no_delete
        self.prev_kv = prev_kv
        self.progress_notify = progress_notify
        self.fragment = fragment
        # Invariant (unsynced): every event below next_rev was delivered; synced watchers are at the head.
        self.next_rev = 0
        self.synced = False
        self.sent_since_progress = False

    def matches(self, key: bytes) -> bool:
        if self.end is None:
            return key == self.key
        return self.key <= key and (not self.end or key < self.end)

    def wants(self, event: kv_pb2.Event) -> bool:
        return not ((event.type == PUT and self.no_put) or (event.type == DELETE and self.no_delete))


class WatchHub:
    def __init__(self, store: KVStore) -> None:
        self.store = store
        self._by_key: dict[bytes, set[Watcher]] = {}
        self._ranges: set[Watcher] = set()
        self._unsynced: set[Watcher] = set()
        store.keep_events = False  # no synced watcher yet: writes need not build their events (see _follow)

    def _follow(self) -> None:
        """Tells the store whether live events are wanted: exactly while a synced watcher exists. Called after
        every change of the synced set; ``notify`` only ever delivers to synced watchers."""
        self.store.keep_events = bool(self._by_key or self._ranges)

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_key.values()) + len(self._ranges) + len(self._unsynced)

    @property
    def unsynced_count(self) -> int:
        return len(self._unsynced)

    def add(self, watcher: Watcher, start_revision: int) -> None:
        """Starts ``watcher`` at ``start_revision`` (0 = after the current revision)."""
        current = self.store.current_revision
        if start_revision == 0 or start_revision > current:
            watcher.next_rev = max(current + 1, start_revision)
            self._add_synced(watcher)
        else:
            watcher.next_rev = start_revision
            self._unsynced.add(watcher)

    def rebase(self, store: KVStore, delivered_through: int) -> None:
        """Serves from ``store`` from now on (a restored snapshot replaced the old one, whose synced watchers
        were sent everything through revision ``delivered_through``): every watcher becomes unsynced at the
        revision it needs next, and ``sync`` catches it up from the new store's history, or cancels it with the
        compact revision if that revision was compacted there. Nothing is sent twice or skipped."""
        self.store = store
        synced = [w for group in self._by_key.values() for w in group] + list(self._ranges)
        for watcher in synced:
            self._remove_synced(watcher)
            watcher.next_rev = max(watcher.next_rev, delivered_through + 1)
            self._unsynced.add(watcher)
        self._follow()

    def remove(self, watcher: Watcher) -> None:
        if watcher.synced:
            self._remove_synced(watcher)
        else:
            self._unsynced.discard(watcher)

    def _add_synced(self, watcher: Watcher) -> None:
        watcher.synced = True
        if watcher.end is None:
            self._by_key.setdefault(watcher.key, set()).add(watcher)
        else:
            self._ranges.add(watcher)
        self.store.keep_events = True

    def _remove_synced(self, watcher: Watcher) -> None:
        watcher.synced = False
        if watcher.end is None:
            group = self._by_key.get(watcher.key)
            if group is not None:
                group.discard(watcher)
                if not group:
                    del self._by_key[watcher.key]
        else:
            self._ranges.discard(watcher)
        self._follow()

    # -- live delivery -------------------------------------------------------------------------

    def notify(self, revision: int, events: list[kv_pb2.Event]) -> None:
        """Delivers one revision's events to the synced watchers whose range they touch."""
        per_watcher: dict[Watcher, list[kv_pb2.Event]] = {}
        for event in events:
            key = event.kv.key
            for watcher in self._by_key.get(key, ()):
                if revision >= watcher.next_rev:  # a watcher may start at a future revision
                    per_watcher.setdefault(watcher, []).append(event)
            for watcher in self._ranges:
                if revision >= watcher.next_rev and watcher.matches(key):
                    per_watcher.setdefault(watcher, []).append(event)
        for watcher, matched in per_watcher.items():
            if not self._deliver(watcher, matched, revision):
                self._remove_synced(watcher)
                watcher.next_rev = revision
                self._unsynced.add(watcher)

    def _deliver(self, watcher: Watcher, events: list[kv_pb2.Event], header_revision: int) -> bool:
        """Sends the events ``watcher`` wants; True if sent or nothing to send, False if its sink is full."""
        wanted = [e for e in events if watcher.wants(e)]
        if not wanted:
            return True
        response = rpc_pb2.WatchResponse(watch_id=watcher.id)
        response.header.revision = header_revision
        for event in wanted:
            out = response.events.add()
            out.CopyFrom(event)
            if watcher.prev_kv and not (event.type == PUT and event.kv.version == 1):
                previous = self.store.previous_kv(event.kv.key, event.kv.mod_revision)
                if previous is not None:
                    out.prev_kv.CopyFrom(previous)
        if watcher.sink.try_send(response):
            watcher.sent_since_progress = True
            return True
        return False

    # -- catch-up ------------------------------------------------------------------------------

    def sync(self) -> None:
        """Moves unsynced watchers towards the head, as far as their sinks take it.

        History is read once per round, from the lowest revision any of them needs, and shared
        (at most MAX_REVISIONS_PER_CATCH_UP revisions per round). Watchers whose sink is full are
        skipped without reading anything: a reader that stopped costs nothing until it reads again."""
        store = self.store
        current = store.current_revision
        pending = []
        for watcher in list(self._unsynced):
            if not watcher.sink.has_room():
                continue
            if watcher.next_rev < store.compact_revision:
                response = rpc_pb2.WatchResponse(
                    watch_id=watcher.id, canceled=True, compact_revision=store.compact_revision
                )
                if watcher.sink.try_send(response):
                    self._unsynced.discard(watcher)
                    watcher.sink.watcher_gone(watcher)
            elif watcher.next_rev < 1:
                # etcd reads no history for a negative start (its backend scan starts past the end):
                # the watcher joins the head.
                self._unsynced.discard(watcher)
                self._add_synced(watcher)
                watcher.sink.watcher_synced(watcher)
            else:
                pending.append(watcher)
        if not pending:
            return
        first = min(w.next_rev for w in pending)
        history_end = min(current, first + MAX_REVISIONS_PER_CATCH_UP - 1)
        history = store.history(first, history_end) if first <= current else []
        for watcher in pending:
            if watcher.next_rev > history_end:
                continue  # beyond this round's window: a later round reaches it
            events = [e for rev, evs in history if rev >= watcher.next_rev for e in evs if watcher.matches(e.kv.key)]
            if not self._deliver(watcher, events, current):
                continue
            watcher.next_rev = history_end + 1
            if watcher.next_rev > current:
                self._unsynced.discard(watcher)
                self._add_synced(watcher)
                watcher.sink.watcher_synced(watcher)

    def progress(self, revision: int) -> None:
        """Periodic progress notification to idle synced watchers that asked for it."""
        for group in (self._ranges, *self._by_key.values()):
            for watcher in list(group):
                if watcher.progress_notify and not watcher.sent_since_progress:
                    response = rpc_pb2.WatchResponse(watch_id=watcher.id)
                    response.header.revision = revision
                    watcher.sink.try_send(response)
                watcher.sent_since_progress = False

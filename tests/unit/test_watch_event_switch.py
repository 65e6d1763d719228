"""Writes build their watch events only while a synced watcher can be sent them (KVStore.keep_events, kept by
the WatchHub over the store); the events a watcher sees do not change."""

from __future__ import annotations

from etcdx.mvcc.watch import Watcher, WatchHub
from tests.support.watch_sink import Sink


def _notify_all(hub: WatchHub) -> None:
    for revision, events in hub.store.take_events():
        hub.notify(revision, events)


def test_a_store_without_a_hub_keeps_its_events(store):
    store.put(b"k", b"1")
    assert [len(events) for _, events in store.kv.take_events()] == [1]


def test_no_events_are_built_while_no_watcher_is_synced(store):
    hub = WatchHub(store.kv)
    store.put(b"k", b"1")
    store.delete(b"k")
    assert store.kv.take_events() == []
    # An unsynced watcher (behind the current revision) catches up from the backend, not from live events.
    sink = Sink()
    hub.add(Watcher(1, b"k", None, sink), start_revision=1)
    assert not store.kv.keep_events
    store.put(b"k", b"2")
    assert store.kv.take_events() == []
    hub.sync()
    assert store.kv.keep_events  # synced now: the next write's events are delivered live
    store.put(b"k", b"3")
    _notify_all(hub)
    seen = [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for r in sink.responses for e in r.events]
    assert seen == [(0, b"k", b"1", 2), (1, b"k", b"", 3), (0, b"k", b"2", 4), (0, b"k", b"3", 5)]


def test_events_stop_when_the_last_synced_watcher_goes(store):
    hub = WatchHub(store.kv)
    sink = Sink()
    point, prefix = Watcher(1, b"a", None, sink), Watcher(2, b"b", b"c", sink)
    hub.add(point, start_revision=0)
    hub.add(prefix, start_revision=0)
    hub.remove(point)
    store.put(b"b1", b"x")
    _notify_all(hub)
    assert [e.kv.key for r in sink.responses for e in r.events] == [b"b1"]
    hub.remove(prefix)
    assert not store.kv.keep_events
    store.put(b"b2", b"y")
    assert store.kv.take_events() == []


def test_a_rebased_hub_follows_its_new_store(store):
    hub = WatchHub(store.kv)
    hub.add(Watcher(1, b"k", None, Sink()), start_revision=0)
    assert store.kv.keep_events
    hub.rebase(store.kv, store.kv.current_revision)  # every watcher unsynced until sync
    assert not store.kv.keep_events

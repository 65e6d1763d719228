"""The pure v2 store: etcd 3.4's semantics, with time passed in (Unix ns)."""

from __future__ import annotations

import json

import pytest

from etcdx.pb.etcdxpb.internal_pb2 import V2Request
from etcdx.v2store.bootstrap import register_member
from etcdx.v2store.errors import V2Error
from etcdx.v2store.events import format_time
from etcdx.v2store.store import V2Store
from tests.support.server_settings import server_settings

NOW = 1_800_000_000 * 10**9
SECOND = 10**9


def fresh() -> V2Store:
    return register_member(server_settings("/unused"), NOW)


class Log:
    """Feeds V2Requests to the store at increasing log indexes, as the applier does."""

    def __init__(self, store: V2Store) -> None:
        self.store = store
        self.index = 100

    def __call__(self, now: int = NOW, **fields):
        self.index += 1
        if "path" in fields:
            fields["path"] = "/1" + fields["path"]
        result = self.store.apply(V2Request(**fields), self.index, now)
        if result.error is not None:
            raise result.error
        return result.events[0] if result.events else None


def body(event) -> dict:
    return json.loads(event.body("/1"))


def get(store: V2Store, path: str, recursive=False, now=NOW) -> dict:
    return body(store.get("/1" + path, recursive, True, now))


def test_first_user_write_gets_index_4_and_the_root_has_no_key():
    store = fresh()
    log = Log(store)
    event = log(method="PUT", path="/a", value="1")
    assert body(event) == {"action": "set", "node": {"key": "/a", "value": "1", "modifiedIndex": 4, "createdIndex": 4}}
    assert event.is_created
    assert get(store, "") == {
        "action": "get",
        "node": {"dir": True, "nodes": [{"key": "/a", "value": "1", "modifiedIndex": 4, "createdIndex": 4}]},
    }


def test_set_over_a_file_is_a_new_node_update_and_cas_keep_created_index():
    log = Log(fresh())
    log(method="PUT", path="/a", value="1")
    replaced = body(log(method="PUT", path="/a", value="2"))
    assert replaced["node"]["createdIndex"] == 5 and replaced["prevNode"]["value"] == "1"
    updated = body(log(method="PUT", path="/a", value="3", prev_exist=True))
    assert updated["action"] == "update" and updated["node"]["createdIndex"] == 5
    swapped = body(log(method="PUT", path="/a", value="4", prev_value="3"))
    assert swapped["action"] == "compareAndSwap" and swapped["node"]["modifiedIndex"] == 7


@pytest.mark.parametrize(
    ("fields", "code", "cause"),
    [
        ({"prev_value": "zz"}, 101, "[zz != v]"),
        ({"prev_index": 1}, 101, "[1 != 4]"),
        ({"prev_value": "zz", "prev_index": 1}, 101, "[zz != v] [1 != 4]"),
        ({"prev_exist": False}, 105, "/k"),
    ],
)
def test_failed_compare_and_swap_names_what_differed(fields, code, cause):
    log = Log(fresh())
    log(method="PUT", path="/k", value="v")
    with pytest.raises(V2Error) as caught:
        log(method="PUT", path="/k", value="new", **fields)
    assert (caught.value.code, caught.value.cause, caught.value.index) == (
        code,
        "/1" + cause if cause[0] == "/" else cause,
        4,
    )


def test_compare_and_delete_and_directory_rules():
    store = fresh()
    log = Log(store)
    log(method="PUT", path="/d/f", value="v")
    with pytest.raises(V2Error) as caught:
        log(method="DELETE", path="/d")
    assert caught.value.code == 102
    with pytest.raises(V2Error) as caught:
        log(method="DELETE", path="/d", dir=True)
    assert caught.value.code == 108
    with pytest.raises(V2Error) as caught:
        log(method="DELETE", path="/d/f", prev_value="other")
    assert caught.value.code == 101
    assert body(log(method="DELETE", path="/d/f", prev_value="v"))["action"] == "compareAndDelete"
    deleted = body(log(method="DELETE", path="/d", dir=True))
    assert deleted["node"] == {"key": "/d", "dir": True, "modifiedIndex": 6, "createdIndex": 4}
    with pytest.raises(V2Error) as caught:
        log(method="DELETE", path="")
    assert (caught.value.code, caught.value.cause) == (107, "/")


def test_in_order_keys_are_named_by_the_index_in_20_digits():
    log = Log(fresh())
    first = body(log(method="POST", path="/queue", value="job"))
    assert first["action"] == "create" and first["node"]["key"] == "/queue/00000000000000000004"


def test_hidden_keys_are_readable_but_not_listed():
    store = fresh()
    log = Log(store)
    log(method="PUT", path="/d/_secret", value="s")
    log(method="PUT", path="/d/open", value="o")
    assert [n["key"] for n in get(store, "/d")["node"]["nodes"]] == ["/d/open"]
    assert get(store, "/d/_secret")["node"]["value"] == "s"


def test_ttl_is_shown_rounded_up_and_expiry_happens_only_through_the_log():
    store = fresh()
    log = Log(store)
    event = body(log(method="PUT", path="/t", value="v", expiration=NOW + 5 * SECOND))
    assert event["node"]["ttl"] == 5 and event["node"]["expiration"] == format_time(NOW + 5 * SECOND)
    assert get(store, "/t", now=NOW + SECOND // 2)["node"]["ttl"] == 5
    assert get(store, "/t", now=NOW + 6 * SECOND)["node"]["value"] == "v"  # not removed until a SYNC applies
    assert log(method="SYNC", time=NOW + 4 * SECOND) is None
    expired = body(log(method="SYNC", time=NOW + 5 * SECOND))
    assert expired["action"] == "expire" and expired["node"] == {"key": "/t", "modifiedIndex": 5, "createdIndex": 4}
    with pytest.raises(V2Error):
        store.get("/1/t", False, False, NOW)


def test_update_without_ttl_makes_a_node_permanent_and_refresh_keeps_the_value_unannounced():
    store = fresh()
    log = Log(store)
    log(method="PUT", path="/t", value="v", expiration=NOW + 5 * SECOND)
    watcher = store.watch("/1/t", False, False, 0)
    refreshed = body(log(method="PUT", path="/t", prev_exist=True, refresh=True, expiration=NOW + 9 * SECOND))
    assert refreshed["node"]["value"] == "v" and refreshed["node"]["ttl"] == 9
    assert not watcher.events  # a refresh is not shown to watchers
    log(method="PUT", path="/t", value="w", prev_exist=True)
    assert watcher.events.popleft().action == "update"
    assert log(method="SYNC", time=NOW + 60 * SECOND) is None
    assert "ttl" not in get(store, "/t")["node"]


def test_updating_a_directory_keeps_its_stored_modified_index():
    store = fresh()
    log = Log(store)
    log(method="PUT", path="/d", dir=True)
    shown = body(log(method="PUT", path="/d", prev_exist=True, expiration=NOW + 5 * SECOND))
    assert shown["node"]["modifiedIndex"] == 5
    assert get(store, "/d")["node"]["modifiedIndex"] == 4


def test_waits_read_the_last_1000_events_and_older_indexes_are_cleared():
    store = fresh()
    log = Log(store)
    for i in range(1031):
        log(method="PUT", path=f"/k{i % 3}", value=str(i))
    assert store.current_index == 1034
    found = store.watch("/1/k1", False, False, 40)
    assert found.events[0].node.modified_index == 41 and found.events[0].etcd_index == 1034
    with pytest.raises(V2Error) as caught:
        store.watch("/1/k1", False, False, 3)
    error = caught.value
    assert (error.code, error.cause, error.index) == (401, "the requested history has been cleared [35/3]", 1034)
    assert error.status == 400


def test_watchers_of_a_directory_see_what_happens_below_only_when_recursive_and_not_hidden():
    store = fresh()
    log = Log(store)
    recursive = store.watch("/1/d", True, True, 0)
    plain = store.watch("/1/d", False, False, 0)
    child = store.watch("/1/d/f", False, False, 0)
    log(method="PUT", path="/d/_h", value="x")
    log(method="PUT", path="/d/f", value="x")
    assert [e.node.key for e in recursive.events] == ["/1/d/f"]
    assert not plain.events
    assert child.events.popleft().node.key == "/1/d/f"
    child = store.watch("/1/d/f", False, False, 0)
    log(method="DELETE", path="/d", recursive=True)
    assert child.events.popleft().action == "delete"  # deleting the directory notifies its children's watchers
    assert plain.events.popleft().node.key == "/1/d"


def test_a_stream_watcher_that_falls_100_events_behind_is_closed():
    store = fresh()
    log = Log(store)
    watcher = store.watch("/1/k", False, True, 0)
    for i in range(101):
        log(method="PUT", path="/k", value=str(i))
    assert watcher.closed and len(watcher.events) == 100
    assert store.hub.count == 0


def test_apply_answers_errors_and_skips_indexes_already_applied():
    store = fresh()
    result = store.apply(V2Request(method="PUT", path="/1/a/b", value="x"), 7, NOW)
    assert result.events[0].node.key == "/1/a/b"
    assert store.apply(V2Request(method="PUT", path="/1/a/b", value="y"), 7, NOW) is None
    failed = store.apply(V2Request(method="PUT", path="/1/a/b/c", value="x"), 8, NOW)
    assert (failed.error.code, failed.error.cause) == (104, "/1/a/b")
    assert failed.error.body() == b'{"errorCode":104,"message":"Not a directory","cause":"/1/a/b","index":4}\n'


def test_saved_state_restores_tree_ttls_index_and_counters():
    from etcdx.v2store.bootstrap import state_if_changed

    store = fresh()
    log = Log(store)
    log(method="PUT", path="/d/_h", value="hidden")
    log(method="PUT", path="/d/t", value="v", expiration=NOW + 5 * SECOND)
    log(method="PUT", path="/e", dir=True)
    saved = state_if_changed(store)
    assert state_if_changed(store) is None  # nothing changed since
    restored = register_member(server_settings("/unused"), NOW, saved)
    assert restored.restored and restored.current_index == store.current_index
    assert restored.stats == store.stats
    assert get(restored, "", recursive=True) == get(store, "", recursive=True)
    assert get(restored, "/d/_h")["node"]["value"] == "hidden"
    Log(restored)(method="SYNC", time=NOW + 5 * SECOND)
    with pytest.raises(V2Error):
        restored.get("/1/d/t", False, False, NOW)

"""etcd3gw (PyPI), a client of etcd's /v3 JSON gateway, against etcdx: put, get, delete, txn, leases (grant,
keep-alive, time-to-live, keys, revoke), watch and lock, as a user of the library would drive them."""

from __future__ import annotations

import queue

import etcd3gw
import pytest

from tests.support.procs import etcdx_process


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with etcdx_process(tmp_path_factory.mktemp("etcd3gw")).start() as server:
        yield etcd3gw.client(host="127.0.0.1", port=server.client_port, timeout=10)


def test_put_get_delete(client):
    assert client.api_path == "/v3/"  # discovered from /version, as against etcd 3.5
    assert client.put("k1", "v1")
    assert client.put("k2", b"v2")
    assert client.get("k1") == [b"v1"]
    assert client.get("missing") == []
    assert sorted(value for value, _ in client.get_prefix("k")) == [b"v1", b"v2"]
    assert client.delete("k1")
    assert not client.delete("k1")
    assert client.get("k1") == []
    assert client.delete_prefix("k")
    assert client.get_prefix("k") == []


def test_txn(client):
    assert client.create("t1", "first")
    assert not client.create("t1", "second")  # the compare on version fails
    assert client.replace("t1", "first", "third")
    assert not client.replace("t1", "first", "fourth")
    assert client.get("t1") == [b"third"]
    response = client.transaction(
        {
            "compare": [{"key": etcd3gw.utils._encode("t1"), "result": "EQUAL", "target": "VERSION", "version": 2}],
            "success": [{"request_range": {"key": etcd3gw.utils._encode("t1")}}],
            "failure": [],
        }
    )
    assert response["succeeded"] is True
    assert response["responses"][0]["response_range"]["count"] == "1"


def test_lease(client):
    lease = client.lease(ttl=60)
    assert lease.id > 0
    assert client.put("leased", "v", lease=lease)
    assert 0 < lease.ttl() <= 60
    assert 0 < lease.refresh() <= 60
    assert lease.keys() == [b"leased"]
    assert lease.revoke()
    assert client.get("leased") == []
    assert lease.ttl() == -1


def test_watch(client):
    events, cancel = client.watch("w")
    received: queue.Queue = queue.Queue()
    try:
        client.put("w", "1")
        client.delete("w")
        received.put(next(events))
        received.put(next(events))
    finally:
        cancel()
    put, delete = received.get_nowait(), received.get_nowait()
    assert put["kv"]["key"] == b"w" and put["kv"]["value"] == b"1" and "type" not in put
    assert delete["type"] == "DELETE" and delete["kv"]["key"] == b"w"


def test_watch_once_sees_the_next_change(client):
    import threading

    timer = threading.Timer(0.5, lambda: client.put("once", "x"))
    timer.start()
    try:
        event = client.watch_once("once", timeout=10)
    finally:
        timer.join()
    assert event["kv"]["value"] == b"x"


def test_lock(client):
    lock = client.lock("my-lock", ttl=30)
    assert lock.acquire()
    assert lock.is_acquired()
    assert lock.release()
    assert not lock.is_acquired()

"""v2 writes survive a restart and a kill -9 of the member: the v2 store's state is committed with the
consistent index, and the log replays what came after."""

from __future__ import annotations

import http.client
import json

from tests.support.procs import etcdx_process


def request(server, method: str, path: str, body: str | None = None) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.client_port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def without_ttl(value):
    """The answer without its TTLs (seconds left: they go down while the member restarts)."""
    if isinstance(value, dict):
        return {k: without_ttl(v) for k, v in value.items() if k != "ttl"}
    if isinstance(value, list):
        return [without_ttl(v) for v in value]
    return value


def test_v2_keys_survive_restart_and_kill9(tmp_path):
    server = etcdx_process(tmp_path, extra_args=("--enable-v2",))
    with server.start():
        request(server, "PUT", "/v2/keys/dir/a", "value=1")
        request(server, "PUT", "/v2/keys/dir/t", "value=2&ttl=600")
        request(server, "POST", "/v2/keys/queue", "value=job")
        before = request(server, "GET", "/v2/keys/?recursive=true&sorted=true")
        server.restart()
        after = request(server, "GET", "/v2/keys/?recursive=true&sorted=true")
        assert without_ttl(after[2]) == without_ttl(before[2])
        assert int(after[1]["x-etcd-index"]) == int(before[1]["x-etcd-index"]) + 1  # attributes published again
        assert request(server, "GET", "/v2/keys/dir/t")[2]["node"]["ttl"] > 590
        status, _, written = request(server, "PUT", "/v2/keys/dir/b", "value=3")
        assert status == 201
        server.kill9()
        server.start()
        status, _, read = request(server, "GET", "/v2/keys/dir/b")
        assert (status, read["node"]["value"], read["node"]["modifiedIndex"]) == (
            200,
            "3",
            written["node"]["modifiedIndex"],
        )

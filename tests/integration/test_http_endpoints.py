"""HTTP/1.1 on the client port, next to gRPC: /health, /version, /metrics as etcd 3.5 serves them."""

from __future__ import annotations

import http.client
import json

import pytest


def get(server, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.client_port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/health", "/version"])
def test_same_answers_as_etcd(etcdx_server, etcd_server, path):
    status, headers, body = get(etcdx_server, path)
    want_status, want_headers, want_body = get(etcd_server, path)
    assert (status, body) == (want_status, want_body)
    assert headers["content-type"] == want_headers["content-type"]


@pytest.mark.parametrize("path", ["/health", "/version"])
def test_only_get_is_allowed(etcdx_server, etcd_server, path):
    status, headers, body = get(etcdx_server, path, method="POST")
    want_status, want_headers, _ = get(etcd_server, path, method="POST")
    assert status == want_status == 405
    assert headers.get("allow") == want_headers.get("allow") == "GET"


def test_metrics_in_prometheus_format_with_etcds_names(etcdx_server):
    status, headers, body = get(etcdx_server, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    for series in (
        "etcd_server_has_leader 1\n",  # numbers as Go writes them
        "etcd_server_is_leader 1\n",
        'etcd_server_version{server_version="3.5.1"} 1\n',
        "etcd_debugging_mvcc_current_revision",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_server_quota_backend_bytes 2.147483648e+09",
        "process_resident_memory_bytes",
    ):
        assert series in text, series


def test_unknown_path_is_404_as_etcd(etcdx_server, etcd_server):
    assert get(etcdx_server, "/nope")[::2] == get(etcd_server, "/nope")[::2] == (404, b"404 page not found\n")


def test_keep_alive_serves_several_requests_on_one_connection(etcdx_server):
    conn = http.client.HTTPConnection("127.0.0.1", etcdx_server.client_port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/version")
            response = conn.getresponse()
            assert json.loads(response.read()) == {"etcdserver": "3.5.1", "etcdcluster": "3.5.0"}
    finally:
        conn.close()

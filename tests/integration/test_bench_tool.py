"""`etcdx bench` against etcdx and against real etcd: what it reports agrees with the servers."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc


def bench(endpoint: str, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "etcdx", "bench", *args, "--endpoints", endpoint, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def revision(endpoint: str) -> int:
    with grpc.insecure_channel(endpoint) as channel:
        return rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"x")).header.revision


@pytest.mark.parametrize("server_fixture", ["etcdx_server", "etcd_server"])
def test_put_count_matches_the_servers_revision(request, server_fixture):
    server = request.getfixturevalue(server_fixture)
    before = revision(server.endpoint)
    report = bench(
        server.endpoint, "put", "--total", "600", "--clients", "8", "--processes", "2", "--key-space-size", "50"
    )
    assert report["requests"] == report["succeeded"] == 600 and report["errors"] == {}
    assert revision(server.endpoint) - before == 600
    assert report["latency_seconds"]["p50"] <= report["latency_seconds"]["p99"] <= report["latency_seconds"]["slowest"]
    assert sum(b["count"] for b in report["histogram"]) == 600
    assert report["tool_cpu_us_per_request"] > 0


@pytest.mark.parametrize("server_fixture", ["etcdx_server", "etcd_server"])
def test_read_and_mixed_scenarios(request, server_fixture):
    server = request.getfixturevalue(server_fixture)
    before = revision(server.endpoint)
    reads = bench(server.endpoint, "range", "--total", "300", "--clients", "4", "--consistency", "s")
    assert reads["succeeded"] == 300 and revision(server.endpoint) == before
    mixed = bench(
        server.endpoint, "txn-mixed", "--total", "400", "--clients", "4", "--rw-ratio", "1", "--key-space-size", "20"
    )
    assert mixed["succeeded"] == 400
    writes = revision(server.endpoint) - before
    assert 100 < writes < 300  # about half of the txns write, each bumping the revision once
    leases = bench(server.endpoint, "lease-keepalive", "--total", "200", "--clients", "2")
    assert leases["succeeded"] == 200 and leases["errors"] == {}


@pytest.mark.parametrize("server_fixture", ["etcdx_server", "etcd_server"])
def test_watch_scenarios_count_every_event(request, server_fixture):
    server = request.getfixturevalue(server_fixture)
    watch = bench(
        server.endpoint,
        "watch",
        "--watchers",
        "60",
        "--streams",
        "3",
        "--put-total",
        "100",
        "--put-rate",
        "500",
        "--key-space-size",
        "30",
    )
    assert watch["events_received"] == watch["events_expected"] > 0
    latency = bench(
        server.endpoint, "watch-latency", "--watchers", "10", "--streams", "2", "--put-total", "50", "--put-rate", "200"
    )
    assert latency["events_received"] == latency["events_expected"] == 500
    assert latency["succeeded"] == 500  # one latency sample per watcher per put

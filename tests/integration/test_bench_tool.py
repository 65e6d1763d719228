"""`etcdx bench` against etcdx and against real etcd, with both clients (native and grpcio): what it
reports agrees with the servers; errors are counted by their gRPC status and message."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc


def bench(endpoint: str, *args: str, client: str = "native") -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "etcdx", "bench", *args, "--endpoints", endpoint, "--client", client, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def proposals_committed(server) -> float:
    """The server's own count of committed proposals, from its /metrics (etcd and etcdx name it alike)."""
    with urllib.request.urlopen(f"http://{server.endpoint}/metrics", timeout=10) as response:
        text = response.read().decode()
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(PROPOSALS_METRIC + " "))


PROPOSALS_METRIC = "etcd_server_proposals_committed_total"


def revision(endpoint: str) -> int:
    with grpc.insecure_channel(endpoint) as channel:
        return rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"x")).header.revision


CLIENTS = ["native", "grpcio"]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server_fixture", ["etcdx_server", "etcd_server"])
def test_put_count_matches_the_servers_revision(request, server_fixture, client):
    server = request.getfixturevalue(server_fixture)
    before, proposals_before = revision(server.endpoint), proposals_committed(server)
    report = bench(
        server.endpoint,
        "put",
        "--total",
        "600",
        "--clients",
        "8",
        "--conns",
        "3",
        "--processes",
        "2",
        "--key-space-size",
        "50",
        client=client,
    )
    assert report["requests"] == report["succeeded"] == 600 and report["errors"] == {}
    assert report["client"] == client
    assert revision(server.endpoint) - before == 600
    proposals = proposals_committed(server) - proposals_before  # one proposal per put, in the server's metrics
    if server_fixture == "etcdx_server":
        assert proposals == 600
    else:  # etcd proposes on its own too (member attributes, cluster version) whenever it sees fit
        assert 600 <= proposals <= 605
    assert report["latency_seconds"]["p50"] <= report["latency_seconds"]["p99"] <= report["latency_seconds"]["slowest"]
    assert sum(b["count"] for b in report["histogram"]) == 600
    assert report["tool_cpu_us_per_request"] > 0


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server_fixture", ["etcdx_server", "etcd_server"])
def test_read_txn_and_lease_scenarios(request, server_fixture, client):
    server = request.getfixturevalue(server_fixture)
    before = revision(server.endpoint)
    for consistency in ("s", "l"):
        reads = bench(server.endpoint, "range", "--total", "300", "--consistency", consistency, client=client)
        assert reads["succeeded"] == 300 and reads["errors"] == {}
    assert revision(server.endpoint) == before
    # sequential keys: the three puts of a txn never repeat a key; one revision per txn
    txn_args = ["--txn-ops", "3", "--sequential-keys", "--key-space-size", "100000", "--clients", "4"]
    txns = bench(server.endpoint, "txn-put", "--total", "100", *txn_args, client=client)
    assert txns["succeeded"] == 100 and revision(server.endpoint) - before == 100
    mixed = bench(
        server.endpoint, "txn-mixed", "--total", "400", "--clients", "4", "--key-space-size", "20", client=client
    )
    assert mixed["succeeded"] == 400
    writes = revision(server.endpoint) - before - 100
    assert 100 < writes < 300  # about half of the txns write, each bumping the revision once
    leases = bench(server.endpoint, "lease-keepalive", "--total", "200", "--clients", "2", client=client)
    assert leases["succeeded"] == 200 and leases["errors"] == {}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server_fixture", ["etcdx_server", "etcd_server"])
def test_errors_are_counted_by_status_and_message(request, server_fixture, client):
    server = request.getfixturevalue(server_fixture)
    before = revision(server.endpoint)
    # above --max-request-bytes (1.5 MiB) but within the gRPC receive limit (2 MiB)
    too_large = bench(
        server.endpoint, "put", "--total", "6", "--clients", "2", "--val-size", str(1600 << 10), client=client
    )
    assert too_large["succeeded"] == 0
    assert too_large["errors"] == {"INVALID_ARGUMENT: etcdserver: request is too large": 6}
    over_limit = bench(server.endpoint, "put", "--total", "4", "--val-size", str(2200 << 10), client=client)
    size = (2200 << 10) + 15  # the PutRequest: key and value with their tags and lengths
    label = f"RESOURCE_EXHAUSTED: grpc: received message larger than max ({size} vs. 2097152)"
    assert over_limit["errors"] == {label: 4}
    assert revision(server.endpoint) == before


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

"""The scenarios of the performance issue's acceptance table, alone (`etcdx bench <scenario>`) against a real
server, and in `etcdx bench compare` against one started etcdx: what the tool reports agrees with what the
server answered (a page's kvs, the revisions the compare-and-puts made, the events of the puts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import pytest

from etcdx.cli.bench import compare
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.integration.test_bench_tool import CLIENTS, bench, revision

SERVERS = ["etcdx_server", "etcd_server"]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server_fixture", SERVERS)
def test_txn_cas_makes_one_revision_per_succeeded_compare(request, server_fixture, client):
    server = request.getfixturevalue(server_fixture)
    args = ["txn-cas", "--duration", "0.5", "--clients", "4", "--key-space-size", "2"]
    before = revision(server.endpoint)
    fresh = bench(server.endpoint, *args, client=client)
    # absent keys compare equal to mod_revision 0: every update succeeds, each one put (one revision)
    assert fresh["errors"] == {} and fresh["succeeded"] > 8
    assert fresh["outcomes"] == {"compare succeeded": fresh["succeeded"]} and fresh["compare_success_share"] == 1.0
    assert revision(server.endpoint) - before == fresh["succeeded"]

    before = revision(server.endpoint)
    again = bench(server.endpoint, *args, client=client)
    # a new run knows no revision: each client's first update of each of its 2 keys fails once, then all succeed
    assert again["errors"] == {} and again["outcomes"]["compare failed"] == 4 * 2
    assert 0 < again["compare_success_share"] < 1
    assert revision(server.endpoint) - before == again["outcomes"]["compare succeeded"]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server_fixture", SERVERS)
def test_range_page_reads_500_keys_of_the_preloaded_prefix(request, server_fixture, client):
    server = request.getfixturevalue(server_fixture)
    compare.preload_page(compare.Target("t", server.endpoint, ""), None)
    with grpc.insecure_channel(server.endpoint) as channel:
        end = compare.PAGE_PREFIX[:-1] + chr(ord(compare.PAGE_PREFIX[-1]) + 1)
        whole = rpc_pb2_grpc.KVStub(channel).Range(
            rpc_pb2.RangeRequest(key=compare.PAGE_PREFIX.encode(), range_end=end.encode(), count_only=True)
        )
    assert whole.count == compare.PAGE_KEYS == 10_000
    for consistency in ("s", "l"):
        argv = ["--range-key", compare.PAGE_PREFIX, "--prefix", "--limit", "500", "--consistency", consistency]
        page = bench(server.endpoint, "range", *argv, "--duration", "0.5", "--clients", "3", client=client)
        assert page["errors"] == {} and page["succeeded"] > 0
        assert page["outcomes"] == {"first reply: 500 kvs": 3}  # every client's first reply was a full page


@pytest.mark.parametrize("server_fixture", SERVERS)
def test_watch_latency_over_many_keys_times_every_event(request, server_fixture):
    server = request.getfixturevalue(server_fixture)
    before = revision(server.endpoint)
    argv = ["--watchers", "300", "--streams", "30", "--watch-keys", "300", "--put-total", "600", "--put-rate", "600"]
    latency = bench(server.endpoint, "watch-latency", *argv)
    # each put has one watcher (its key's): one event, one latency sample
    assert latency["events_received"] == latency["events_expected"] == 600 == latency["succeeded"]
    assert latency["errors"] == {} and latency["watchers"] == 300 and latency["streams"] == 30
    assert revision(server.endpoint) - before == 600


@pytest.mark.parametrize("server_fixture", SERVERS)
def test_watch_create_times_every_creation(request, server_fixture):
    server = request.getfixturevalue(server_fixture)
    created = bench(server.endpoint, "watch-create", "--watchers", "200", "--streams", "10")
    assert created["succeeded"] == 200 and created["errors"] == {}
    assert created["watchers_per_second"] > 0 and created["requests_per_second"] > 0


def test_compare_runs_the_acceptance_scenarios_with_their_preloads(tmp_path):
    out = tmp_path / "report"
    scenarios = "range-page-serializable,range-page-linearizable,txn-cas,watch-latency,watch-create"
    command = [sys.executable, "-m", "etcdx", "bench", "compare", "--start", "etcdx", "--scenarios", scenarios]
    command += ["--clients", "1,3", "--repeat", "1", "--duration", "0.3", "--watch-duration", "0.5"]
    command += ["--watch-scale", "0.02", "--note", "a shared machine", "--out", str(out), "--data-root", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    results = json.loads((out / "results.json").read_text())
    cells = {(c["scenario"], c["clients"]): c for c in results["cells"]}
    requests = {(s, c) for s in ("range-page-serializable", "range-page-linearizable", "txn-cas") for c in (1, 3)}
    assert set(cells) == requests | {("watch-latency", 0), ("watch-create", 0)}
    for (scenario, clients), cell in cells.items():
        (run,) = cell["runs"]["etcdx"]
        assert run["succeeded"] > 0 and run["errors"] == {} and run["server_cpu_seconds"] is not None
        if scenario.startswith("range-page"):  # the preloaded prefix: a full page for every client
            assert run["outcomes"] == {"first reply: 500 kvs": clients}
        elif scenario == "txn-cas":  # the preloaded keys: each client's one key fails once, then succeeds
            assert run["outcomes"]["compare failed"] == clients and run["compare_success_share"] > 0
        if clients:  # a request cell (a watch cell's few creations may take less than a CPU tick)
            assert run["server_cpu_us_per_request"] > 0
    latency = cells[("watch-latency", 0)]["runs"]["etcdx"][0]
    assert latency["watchers"] == 200 and latency["streams"] == 100  # 10,000 x 0.02 on 100 streams
    assert latency["events_received"] == latency["events_expected"] == latency["puts"] == 500
    create = cells[("watch-create", 0)]["runs"]["etcdx"][0]
    assert create["watchers"] == create["succeeded"] == 20 and create["streams"] == 10

    report = (out / "report.md").read_text()
    assert "| watch-latency | 200 watchers / 100 streams | p99 event ms |" in report
    assert "| watch-create | 20 watchers / 10 streams | watchers/s |" in report
    assert "- txn-cas c=3 etcdx: compare failed x3; compare succeeded x" in report
    assert (
        "- a shared machine\n" in report and "- txn-cas: `etcdx bench txn-cas --key-space-size 1`; preloaded" in report
    )
    assert "- watch-latency: `etcdx bench watch-latency --watchers 200 --streams 100 --watch-keys 200" in report
    (target,) = results["targets"]
    with pytest.raises(ProcessLookupError):  # stopped by PID and reaped before the command returned
        os.kill(target["pid"], 0)

"""Metrics acceptance: after the same etcdctl workload on a 3-member etcd 3.5.1 cluster and a 3-member etcdx
cluster (both with --enable-v2, --metrics extensive and a --listen-metrics-urls listener on member m0), every
metric family etcd exports is exported by etcdx with the same type and the same label names, read from the
metrics listener and parsed with prometheus_client's text parser. Go runtime series (go_*, process_*) and the
families named in EXCLUDED (each with its reason) are left out.
"""

from __future__ import annotations

import json
import select
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import procs

# Families etcd 3.5.1 exports that etcdx does not, and why.
EXCLUDED = {
    "etcd_debugging_disk_backend_commit_rebalance_duration_seconds": "bbolt's commit phases; LMDB commits in one call",
    "etcd_debugging_disk_backend_commit_spill_duration_seconds": "bbolt's commit phases; LMDB commits in one call",
    "etcd_debugging_disk_backend_commit_write_duration_seconds": "bbolt's commit phases; LMDB commits in one call",
    "etcd_server_apply_duration_seconds": "per-request apply timing: no metrics work per request on the write path",
    "etcd_network_peer_round_trip_time_seconds": "etcdx has no peer RTT prober (etcd's /raft/probing)",
}
GO_RUNTIME = ("go_", "process_")
WATCHED_KEY = "w"


def _families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, label names) of every family with samples (bucket/quantile labels left out)."""
    found = {}
    for family in text_string_to_metric_families(text):
        labels = {name for sample in family.samples for name in sample.labels} - {"le", "quantile"}
        found[family.name] = (family.type, frozenset(labels))
    return found


def _ctl(endpoint: str, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [procs.ETCDCTL, "--endpoints", endpoint, "--command-timeout", "10s", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def _http(url: str, method: str = "GET", body: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("content-type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def _workload_and_scrape(members: list[procs.ServerProcess], metrics_url: str) -> str:
    """The fixed workload through m0: puts, ranges, a txn, a watch that sees an event, a lease with a keep-alive,
    a compaction, v2 writes and reads, /health; then m0's /metrics from its metrics listener (the watch open)."""
    endpoint = members[0].endpoint
    watcher = subprocess.Popen(
        # From revision 1: the event is delivered however late the watch starts (before the compaction).
        [procs.ETCDCTL, "--endpoints", endpoint, "watch", WATCHED_KEY, "--rev", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for n in range(5):
            _ctl(endpoint, "put", f"k{n}", f"v{n}")
        _ctl(endpoint, "get", "k", "--prefix")
        _ctl(endpoint, "get", "k0", "--consistency=s")
        _ctl(endpoint, "txn", stdin='value("k0") = "v0"\n\nput t yes\n\nput t no\n\n')
        lease = _ctl(endpoint, "lease", "grant", "600").split()[1]
        _ctl(endpoint, "lease", "keep-alive", "--once", lease)
        _ctl(endpoint, "put", WATCHED_KEY, "seen", "--lease", lease)
        assert select.select([watcher.stdout], [], [], 10)[0], "the watch delivered nothing"
        assert watcher.stdout.readline().strip() == "PUT"
        _ctl(endpoint, "del", "k4")
        revision = json.loads(_ctl(endpoint, "endpoint", "status", "-w", "json"))[0]["Status"]["header"]["revision"]
        _ctl(endpoint, "compaction", str(revision - 2))
        _http(f"{members[0].client_url}/v2/keys/v2key", "PUT", b"value=one")
        _http(f"{members[0].client_url}/v2/keys/v2key")
        assert json.loads(_http(f"{metrics_url}/health"))["health"] == "true"
        return _http(f"{metrics_url}/metrics").decode()
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


def _series(text: str, family_name: str) -> set[tuple]:
    """The label sets of one family's samples."""
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            return {tuple(sorted(sample.labels.items())) for sample in family.samples}
    return set()


def _run_cluster(members: list[procs.ServerProcess], metrics_port: int) -> str:
    members[0].argv += ["--listen-metrics-urls", f"http://127.0.0.1:{metrics_port}"]
    procs.start_cluster(members)
    try:
        deadline = time.monotonic() + 15
        while procs.current_leader(members) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return _workload_and_scrape(members, f"http://127.0.0.1:{metrics_port}")
    finally:
        procs.stop_cluster(members)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    (tmp / "etcd").mkdir()
    (tmp / "etcdx").mkdir()
    flags = ("--enable-v2", "--metrics", "extensive")
    try:
        etcd_port, etcdx_port = procs.free_ports(2)
        etcd = _run_cluster(procs.etcd_cluster(tmp / "etcd", 3, flags), etcd_port)
        etcdx = _run_cluster(procs.etcdx_cluster(tmp / "etcdx", 3, flags), etcdx_port)
    finally:
        procs.kill_leftovers()
    return etcd, etcdx


def test_every_etcd_family_is_exported_with_its_type_and_labels(exported):
    etcd, etcdx = (_families(text) for text in exported)
    wanted = {name: shape for name, shape in etcd.items() if not name.startswith(GO_RUNTIME) and name not in EXCLUDED}
    missing = sorted(name for name in wanted if name not in etcdx)
    different = {name: (wanted[name], etcdx[name]) for name in wanted if name in etcdx and etcdx[name] != wanted[name]}
    assert not missing, f"families etcd exports and etcdx does not: {missing}"
    assert not different, f"families whose (type, labels) differ, etcd vs etcdx: {different}"
    # The workload's traffic shows up under etcd's label sets.
    for name in ("etcd_network_active_peers", "etcd_network_peer_sent_bytes", "grpc_server_handling_seconds"):
        assert name in wanted, f"etcd did not export {name}: the workload did not exercise it"


@pytest.mark.parametrize(
    "family", ["grpc_server_started", "grpc_server_handled", "grpc_server_msg_sent", "etcd_server_client_requests"]
)
def test_grpc_series_are_etcds(exported, family):
    """Not only the label names: the same series (every method of the same services, every code, the client
    API versions etcdctl announced) as etcd's after the same workload."""
    etcd, etcdx = (_series(text, family) for text in exported)
    assert etcd and etcdx == etcd, sorted(etcd ^ etcdx)[:10]


def test_excluded_families_are_really_absent(exported):
    """The EXCLUDED list stays honest: a family etcdx exports must be compared, not excluded."""
    etcdx = _families(exported[1])
    assert not [name for name in EXCLUDED if name in etcdx]


def _status(url: str, context: ssl.SSLContext, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10, context=context) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_https_metrics_url_serves_only_metrics_and_health_as_etcd(tmp_path):
    """An https:// --listen-metrics-urls listener takes the client TLS settings (here --auto-tls) and serves
    /metrics and /health only: the same status per path as etcd's."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    paths = [("/metrics", "GET"), ("/health", "GET"), ("/health", "POST"), ("/version", "GET"), ("/v2/keys", "GET")]
    statuses = []
    for make in (procs.etcd_process, procs.etcdx_process):
        (port,) = procs.free_ports(1)
        flags = ("--auto-tls", "--listen-metrics-urls", f"https://127.0.0.1:{port}", "--enable-v2")
        with make(tmp_path, extra_args=flags).start():
            statuses.append([_status(f"https://127.0.0.1:{port}{path}", context, method) for path, method in paths])
    assert statuses[1] == statuses[0] == [200, 200, 405, 404, 404]


def _watch_metrics(member: procs.ServerProcess) -> tuple[float, float]:
    """(open watch streams, Watch calls ended Canceled) from the member's /metrics."""
    text = _http(f"{member.client_url}/metrics").decode()
    streams = canceled = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "etcd_debugging_mvcc_watch_stream_total":
                streams = sample.value
            labels = sample.labels
            if sample.name == "grpc_server_handled_total" and labels.get("grpc_service") == "etcdserverpb.Watch":
                canceled = sample.value if labels["grpc_code"] == "Canceled" else canceled
    return streams, canceled


def _open_watch(member: procs.ServerProcess) -> subprocess.Popen:
    watcher = subprocess.Popen(
        [procs.ETCDCTL, "--endpoints", member.endpoint, "watch", "x", "-w", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while _watch_metrics(member)[0] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    return watcher


def test_watch_streams_that_end_are_counted_as_etcd_counts_them(tmp_path):
    """A watch stream whose client is killed (the connection drops) or interrupted (it cancels) ends: the
    stream gauge goes back to 0 and the call counts as handled with code Canceled, as in etcd."""
    seen = []
    for make in (procs.etcd_process, procs.etcdx_process):
        with make(tmp_path).start() as member:
            steps = []
            for stop in (subprocess.Popen.kill, subprocess.Popen.terminate):
                watcher = _open_watch(member)
                steps.append(_watch_metrics(member))
                stop(watcher)
                watcher.wait(timeout=10)
                deadline = time.monotonic() + 10
                while _watch_metrics(member)[0] != 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
                steps.append(_watch_metrics(member))
            seen.append(steps)
    assert seen[1] == seen[0] == [(1, 0), (0, 1), (1, 1), (0, 2)]


_CALL_FAMILIES = ("grpc_server_", "etcd_server_client_requests_total", "etcd_debugging_mvcc_watch_stream_total")


def _call_series(member: procs.ServerProcess) -> set[str]:
    """The non-zero series lines of the call-counting families."""
    text = _http(f"{member.client_url}/metrics").decode()
    return {line for line in text.splitlines() if line.startswith(_CALL_FAMILIES) and not line.endswith(" 0")}


def test_gateway_calls_are_counted_as_grpc_calls_as_in_etcd(tmp_path):
    """etcd's /v3 gateway reaches its gRPC server, so its calls count in grpc_server_* (client API version
    "unknown"): a put, and a watch the client drops, add the same series on both."""
    added = []
    for make in (procs.etcd_process, procs.etcdx_process):
        with make(tmp_path).start() as member:
            before = _call_series(member)
            _http(f"{member.client_url}/v3/kv/put", "POST", b'{"key":"YQ==","value":"Yg=="}')
            watch = urllib.request.urlopen(
                urllib.request.Request(
                    f"{member.client_url}/v3/watch", data=b'{"create_request":{"key":"YQ=="}}', method="POST"
                ),
                timeout=10,
            )
            assert b'"created":true' in watch.readline()
            open_watch = _call_series(member) - before
            watch.close()
            deadline = time.monotonic() + 10
            while any("watch_stream_total" in line for line in _call_series(member)) and time.monotonic() < deadline:
                time.sleep(0.05)
            added.append((open_watch, _call_series(member) - before))
    assert added[1] == added[0]
    assert "etcd_debugging_mvcc_watch_stream_total 1" in added[0][0]

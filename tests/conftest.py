from pathlib import Path

import pytest

from tests.support.procs import etcd_process, etcdx_process, kill_leftovers


@pytest.fixture(scope="session", autouse=True)
def _stop_leftover_servers():
    yield
    kill_leftovers()


@pytest.fixture
def etcdx_server(tmp_path):
    with etcdx_process(tmp_path).start() as server:
        yield server


@pytest.fixture
def etcd_server(tmp_path):
    with etcd_process(tmp_path).start() as server:
        yield server


# Test files whose subject is behaviour no Cython module (etcdx/_native) implements: cluster operations and
# membership, leader changes, the v2 API, the /v3 JSON gateway, flags and logging, etcdctl's printed output, the bench
# tool, the proxies, the read workers' processes, TLS, auth, leases and the recipes, snapshots and HashKV, the NOSPACE
# recovery, reading etcd's bbolt files, HTTP/1.1's endpoints. They run servers, so they pass through the codecs as
# every test does, but what they check would not change with the twins. Marked "compiled_once": CI runs them once,
# compiled (scripts/test.sh). Every other test, the twin-equivalence unit tests, the KV and watch differential tests
# against etcd, the HTTP/2 and connection abuse tests, the fuzzer and the power cuts among them, runs on both (the
# seeded campaigns on the twins with other or fewer seeds: scripts/test.sh).
_COMPILED_ONCE = frozenset(
    {
        "tests/compat/test_auth_differential.py",
        "tests/compat/test_cluster_etcdctl.py",
        "tests/integration/test_auth_holes.py",
        "tests/integration/test_bbolt_reader.py",
        "tests/integration/test_bench_acceptance_scenarios.py",
        "tests/integration/test_bench_cluster_compare.py",
        "tests/integration/test_bench_compare.py",
        "tests/integration/test_bench_recovery.py",
        "tests/integration/test_bench_tls.py",
        "tests/integration/test_bench_tool.py",
        "tests/integration/test_bench_without_extras.py",
        "tests/integration/test_catch_up_by_snapshot.py",
        "tests/integration/test_cluster_basic.py",
        "tests/integration/test_cluster_leader_ops.py",
        "tests/integration/test_cluster_members.py",
        "tests/integration/test_etcdctl.py",
        "tests/integration/test_etcdctl_watch_lease.py",
        "tests/integration/test_flags.py",
        "tests/integration/test_force_new_cluster.py",
        "tests/integration/test_gateway_differential.py",
        "tests/integration/test_gateway_etcd3gw.py",
        "tests/integration/test_http_endpoints.py",
        "tests/integration/test_leader_drill.py",
        "tests/integration/test_learner_rpcs.py",
        "tests/integration/test_leases_locks.py",
        "tests/integration/test_logging.py",
        "tests/integration/test_metrics_names.py",
        "tests/integration/test_nospace.py",
        "tests/integration/test_proxies.py",
        "tests/integration/test_read_workers.py",
        "tests/integration/test_restart_under_load.py",
        "tests/integration/test_seed_etcdctl_v3.py",
        "tests/integration/test_snapshot_restore.py",
        "tests/integration/test_snapshot_rpcs.py",
        "tests/integration/test_systemd_notify.py",
        "tests/integration/test_tls.py",
        "tests/integration/test_v2_differential.py",
        "tests/integration/test_v2_endpoints.py",
        "tests/integration/test_v2_etcdctl.py",
        "tests/integration/test_v2_restart.py",
    }
)
_ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(_ROOT).as_posix() in _COMPILED_ONCE:
            item.add_marker(pytest.mark.compiled_once)

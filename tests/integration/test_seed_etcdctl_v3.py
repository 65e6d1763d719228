"""Every v3 etcdctl command of the seed's notes (/work/shared/seed/000_*.txt: put, get with --print-value-only,
--hex, a range, --prefix, --limit, --from-key and --rev, del with --prev-kv, a range, --prefix and --from-key,
watch, lock, txn -i with the seed's input, compact, lease grant/revoke/keep-alive/timetolive --keys, and the
`get "" --prefix=true -w json` / `get KEY -w json` of its Kubernetes section), run with etcdctl 3.4
(/usr/bin/etcdctl) against etcd 3.4.23 and against etcdx, in the seed's order, on the data each section of the
seed assumes: identical output.

Normalised, each for a reason:
- lease IDs (etcd derives them from its member ID and the time), by order of appearance, in hex and in the
  decimal form of `-w json`; a lock's key ends with its lease ID;
- cluster_id, member_id and raft_term in `-w json` (each server has its own IDs; etcd 3.4 counts a term more
  at start);
- `remaining(Ns)` of `lease timetolive`: the seconds left depend on when the command ran (checked to be within
  the TTL);
- the order of `attached keys([...])`: etcd lists a lease's keys from a Go map, in random order;
- etcdctl's own client log lines on stderr (JSON with a timestamp and a random client id: its retry warnings);
  the "Error:" lines are compared.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tests.support.procs import ETCD_34, ETCDCTL_34, etcd34_process, etcdx_process

pytestmark = pytest.mark.skipif(
    (shutil.which(ETCD_34) is None or shutil.which(ETCDCTL_34) is None) and not os.environ.get("CI"),
    reason="etcd 3.4.23 / etcdctl 3.4 (Debian etcd-server, etcd-client) missing",
)

# The seed's txn -i session (compares, success requests, failure requests, each ended by an empty line), and the
# same with the create("") and mod("") lines its transcript shows under the compares.
TXN_SEED = 'value("user") = "frank"\n\nput result ok\n\nput result failed\n\n'
TXN_SEED_TRANSCRIPT = 'value("user") = "frank"\ncreate("")\nmod("")\n\nput result ok\n\nput result failed\n\n'

# The seed's commands and the data each of its sections assumes; "<lease>" is the lease the last grant made.
STEPS: list[tuple[str, ...]] = [
    ("put", "foo", "bar"),
    ("put", "foo1", "bar1"),
    ("put", "foo2", "bar2"),
    ("put", "foo3", "bar3"),
    ("put", "a", "123"),
    ("put", "b", "456"),
    ("put", "z", "789"),
    ("get", "foo"),
    ("get", "foo", "--print-value-only"),
    ("get", "foo", "--hex"),
    ("get", "foo", "foo3"),
    ("get", "--prefix", "foo"),
    ("get", "--limit=2", "--prefix", "foo"),
    ("get", "--from-key", "b"),
    ("put", "foo", "bar_new"),
    ("put", "foo1", "bar1_new"),
    ("get", "--prefix", "foo"),
    ("get", "--prefix", "--rev=4", "foo"),
    ("get", "--prefix", "--rev=3", "foo"),
    ("get", "--prefix", "--rev=2", "foo"),
    ("get", "--prefix", "--rev=1", "foo"),
    ("del", "foo"),
    ("del", "foo"),
    ("put", "zoo", "val"),
    ("put", "zoo1", "val1"),
    ("put", "zoo2", "val2"),
    ("del", "--prev-kv", "zoo"),
    ("del", "foo", "foo9"),
    ("del", "--prefix", "zoo"),
    ("del", "--from-key", "b"),
    ("WATCH", "foo"),
    ("LOCK", "mutex1"),
    ("put", "user", "frank"),
    ("txn", "-i", TXN_SEED),
    ("get", "result"),
    ("txn", "-i", TXN_SEED_TRANSCRIPT),
    ("compact", "5"),
    ("get", "--rev=4", "foo"),
    ("lease", "grant", "30"),
    ("put", "foo", "bar", "--lease=<lease>"),
    ("lease", "revoke", "<lease>"),
    ("get", "foo"),
    ("lease", "grant", "10"),
    ("KEEPALIVE", "<lease>"),
    ("lease", "grant", "200"),
    ("put", "demo1", "val1", "--lease=<lease>"),
    ("put", "demo2", "val2", "--lease=<lease>"),
    ("lease", "timetolive", "<lease>"),
    ("lease", "timetolive", "--keys", "<lease>"),
    ("get", "", "--prefix=true", "-w", "json"),
    ("get", "KEY", "-w", "json"),
    ("get", "demo1", "-w", "json"),
]

_GRANTED = re.compile(r"lease ([0-9a-f]+) granted")
_JSON_IDS = re.compile(r'"(cluster_id|member_id|raft_term)":\d+')
_ATTACHED = re.compile(r"attached keys\(\[([^\]]*)\]\)")
_REMAINING = re.compile(r"remaining\((-?\d+)s\)")


def etcdctl(endpoint: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    done = subprocess.run(
        [ETCDCTL_34, "--endpoints", endpoint, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
    return done.returncode, done.stdout, done.stderr


def background(endpoint: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [ETCDCTL_34, "--endpoints", endpoint, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "ETCDCTL_API": "3"},
    )


def stop(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> str:
    """Signals one etcdctl (by its own handle), waits for it, returns what it printed after the lines read."""
    proc.send_signal(sig)
    try:
        rest, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, _ = proc.communicate(timeout=10)
    return rest


class Session:
    """Runs the steps against one server; ``leases`` names each granted lease in order."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.leases: list[int] = []

    def normalise(self, text: str) -> str:
        for n, lease in enumerate(self.leases):
            for form in (f"{lease:016x}", f"{lease:x}", str(lease)):  # etcdctl pads to 16; a lock key does not
                text = text.replace(form, f"<lease{n}>")
        text = _JSON_IDS.sub(r'"\1":<id>', text)
        text = _ATTACHED.sub(lambda m: "attached keys([" + " ".join(sorted(m.group(1).split())) + "])", text)
        return _REMAINING.sub("remaining(<s>)", text)

    def run(self) -> list[tuple[str, int, str, str]]:
        out = []
        for step in STEPS:
            args = [a.replace("<lease>", f"{self.leases[-1]:x}") if self.leases else a for a in step]
            if args[0] == "WATCH":
                code, stdout, stderr = self.watch(args[1])
            elif args[0] == "LOCK":
                code, stdout, stderr = self.lock(args[1])
            elif args[0] == "KEEPALIVE":
                code, stdout, stderr = self.keep_alive(args[1])
            elif args[:2] == ["txn", "-i"]:
                code, stdout, stderr = etcdctl(self.endpoint, "txn", "-i", stdin=args[2])
            else:
                code, stdout, stderr = etcdctl(self.endpoint, *args)
            granted = _GRANTED.search(stdout)
            if granted:
                self.leases.append(int(granted.group(1), 16))
            for remaining in _REMAINING.findall(stdout):
                assert 0 < int(remaining) <= 200, stdout
            label = " ".join(step)
            errors = "\n".join(line for line in stderr.splitlines() if not line.startswith('{"level"'))
            out.append((label, code, self.normalise(stdout), self.normalise(errors)))
        return out

    def watch(self, key: str) -> tuple[int, str, str]:
        """The seed's two terminals: `watch foo` while another puts 123 and 456 and deletes foo."""
        watcher = background(self.endpoint, "watch", key)
        try:
            time.sleep(1.0)  # the watch is registered once etcdctl connected and sent it
            writes = [etcdctl(self.endpoint, *cmd) for cmd in (("put", key, "123"), ("put", key, "456"), ("del", key))]
            lines = [watcher.stdout.readline() for _ in range(8)]  # PUT foo 123 PUT foo 456 DELETE foo
        finally:
            stop(watcher)
        return 0, "".join(lines), repr(writes)

    def lock(self, name: str) -> tuple[int, str, str]:
        """The seed's two terminals: `lock mutex1` holds it, a second `lock mutex1` waits until the first ends
        (Ctrl+C), then holds it."""
        first = background(self.endpoint, "lock", name)
        second = None
        try:
            held = first.stdout.readline()
            second = background(self.endpoint, "lock", name)
            time.sleep(1.0)  # the second waits for the first
            waiting = second.poll() is None
            stop(first, signal.SIGINT)  # what it prints then varies from run to run (etcd too): not compared
            taken = second.stdout.readline()
            stop(second, signal.SIGINT)  # Ctrl+C: it unlocks (deletes its key), as the first did
        finally:
            stop(first)
            if second is not None:
                stop(second)
        lease_of = re.compile(re.escape(name) + r"/([0-9a-f]+)")
        for line in (held, taken):
            found = lease_of.search(line)
            if found:
                self.leases.append(int(found.group(1), 16))
        return first.returncode, held + taken, f"second waits for the first: {waiting}"

    def keep_alive(self, lease: str) -> tuple[int, str, str]:
        """`lease keep-alive` runs until stopped: its first line."""
        proc = background(self.endpoint, "lease", "keep-alive", lease)
        try:
            line = proc.stdout.readline()
        finally:
            stop(proc)
        return 0, line, ""


def test_seed_etcdctl_v3_commands_match_etcd_34(tmp_path):
    with etcd34_process(tmp_path).start() as etcd:
        expected = Session(etcd.client_url).run()
    with etcdx_process(tmp_path).start() as etcdx:
        got = Session(etcdx.client_url).run()
    for want, have in zip(expected, got, strict=True):
        assert have == want
    by_label = {label: (code, stdout) for label, code, stdout, _ in expected}
    assert by_label["get foo --hex"] == (0, "\\x66\\x6f\\x6f\n\\x62\\x61\\x72\n")
    assert by_label["get result"] == (0, "result\nok\n")
    assert by_label["WATCH foo"] == (0, "PUT\nfoo\n123\nPUT\nfoo\n456\nDELETE\nfoo\n")
    assert by_label["LOCK mutex1"][1].startswith("mutex1/<lease0>\nmutex1/<lease1>\n")

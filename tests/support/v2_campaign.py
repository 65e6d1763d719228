"""Differential campaign for the v2 keys API: seeded random sequences of v2 operations sent to etcd 3.4.23
(--enable-v2, the oracle) and to etcdx, one request to each in turn; every answer must match in status, body
and headers.

Operations: set, create (prevExist=false), update (prevExist=true), compare-and-swap and compare-and-delete
on value and index (matching and not), TTLs on keys and directories, refresh, directories (mkdir, rmdir,
recursive delete), in-order keys (POST), hidden keys, recursive and sorted gets, noValueOnSuccess, malformed
parameters, and waits: at indexes inside the 1000-event window (answered from history), before it (401),
and for the next event (a write then wakes both watchers).

Normalised, and only this (each for a reason that makes the value differ between two correct servers):
- ``expiration``: an absolute wall-clock time, computed on each server from its own clock;
- ``ttl``: whole seconds left, rounded up, so the same TTL read a few ms apart may differ by 1 (a difference
  of more than 1 is a failure);
- the order of ``nodes`` in a listing asked for without sorted=true: etcd lists them in Go map order;
- the X-Raft-Index value (it must be present where etcd sends it): it counts raft log entries, and etcd's log
  holds its bootstrap entries and timer-driven SYNC entries that depend on wall-clock timing;
- the X-Etcd-Cluster-Id value (present, lowercase hex): it is derived from the member's URLs, which differ;
- the Date value (present): wall clock.
Headers compared: Content-Type, X-Etcd-Index, X-Raft-Term, Allow, and the presence of the normalised ones.

The CLI is scripts/v2_differential.py; CI runs a subset (tests/integration/test_v2_differential.py).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

KEYS = ["a", "b", "_h", "d/x", "d/y", "d/_h", "d/e/z", "q"]
DIRS = ["d", "d/e", "q", "f"]
VALUES = ["v1", "v2", "", "héllo", "a&b<c>", "x y"]
SHORT_TTLS = [2, 3]  # in one sequence of five: they run out, and the sequence waits for that on both servers
LONG_TTLS = [3600, 86400]  # in the others: shown, refreshed and compared, never reached during a run
FILL = 1000  # writes before the sequences, so that waits can fall before the 1000-event window


class Server:
    """One keep-alive connection to a server's client URL."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)

    def request(self, method: str, path: str, query: dict, form: dict | None = None):
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        body = urllib.parse.urlencode(form) if form is not None else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
        try:
            self.conn.request(method, target, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            raise
        return response.status, dict((k.lower(), v) for k, v in response.getheaders()), data

    def open_wait(self, path: str, query: dict):
        """Starts a wait=true GET on its own connection; returns (connection, response) once headers came."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        conn.request("GET", path + "?" + urllib.parse.urlencode(query))
        return conn, conn.getresponse()


def _read_event(conn, response, timeout: float, out: list) -> None:
    try:
        conn.sock.settimeout(timeout)
        out.append(response.readline())
    except (OSError, http.client.HTTPException):
        out.append(b"<no event>")
    finally:
        conn.close()


def _normalise_nodes(node: dict, sort: bool) -> None:
    if "expiration" in node:
        node["expiration"] = "<time>"
    if "nodes" in node:
        for child in node["nodes"]:
            _normalise_nodes(child, sort)
        if sort:
            node["nodes"].sort(key=lambda n: n.get("key", ""))


def _ttls(node: dict | None, out: list) -> None:
    if not node:
        return
    out.append(node.get("ttl"))
    for child in node.get("nodes", []):
        _ttls(child, out)


def normalise(body: bytes, unsorted: bool) -> tuple[object, list]:
    """(the body with expirations and unsorted listings normalised, its TTLs in order)."""
    try:
        value = json.loads(body)
    except ValueError:
        return body, []
    ttls: list = []
    if isinstance(value, dict):
        for name in ("node", "prevNode"):
            if isinstance(value.get(name), dict):
                _normalise_nodes(value[name], unsorted)
                _ttls(value[name], ttls)  # after sorting: an unsorted listing's TTLs in key order
    return value, ttls


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes


@dataclass
class Campaign:
    etcd: Server
    etcdx: Server
    checked: int = 0
    failures: list[str] = field(default_factory=list)
    max_expiry: float = 0.0
    codes: dict = field(default_factory=dict)  # etcd's answers by status / v2 error code, for the summary

    def compare(self, label: str, a: Answer, b: Answer, unsorted: bool = False) -> None:
        self.checked += 1
        try:
            parsed = json.loads(a.body)
            kind = f"error {parsed['errorCode']}" if "errorCode" in parsed else f"{a.status} {parsed['action']}"
        except (ValueError, KeyError, TypeError):
            kind = f"http {a.status} {a.body[:10]!r}" if a.body else "wait headers"
        self.codes[kind] = self.codes.get(kind, 0) + 1
        problems = []
        if a.status != b.status:
            problems.append(f"status {a.status} != {b.status}")
        body_a, ttls_a = normalise(a.body, unsorted)
        body_b, ttls_b = normalise(b.body, unsorted)
        if len(ttls_a) != len(ttls_b) or any(
            (x is None) != (y is None) or (x is not None and abs(x - y) > 1)
            for x, y in zip(ttls_a, ttls_b, strict=False)
        ):
            problems.append(f"ttls {ttls_a} != {ttls_b}")
        _align_ttls(body_a, body_b)
        if body_a != body_b:
            problems.append(f"body {a.body!r} != {b.body!r}")
        for name in ("content-type", "x-etcd-index", "x-raft-term", "allow"):
            if a.headers.get(name) != b.headers.get(name):
                problems.append(f"header {name}: {a.headers.get(name)!r} != {b.headers.get(name)!r}")
        for name in ("x-raft-index", "x-etcd-cluster-id", "date"):
            if (name in a.headers) != (name in b.headers):
                problems.append(f"header {name} presence: {name in a.headers} != {name in b.headers}")
        if problems:
            self.failures.append(f"{label}: " + "; ".join(problems))

    def both(self, method: str, path: str, query: dict, form: dict | None = None) -> tuple[Answer, Answer]:
        a = Answer(*self.etcd.request(method, path, query, form))
        b = Answer(*self.etcdx.request(method, path, query, form))
        return a, b


def _align_ttls(a, b) -> None:
    """Makes b's TTLs equal to a's where they differ by at most one (checked before)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if "ttl" in a and "ttl" in b and abs(a["ttl"] - b["ttl"]) <= 1:
            b["ttl"] = a["ttl"]
        for key in a:
            if key in b:
                _align_ttls(a[key], b[key])
    elif isinstance(a, list) and isinstance(b, list):
        for x, y in zip(a, b, strict=False):
            _align_ttls(x, y)


def fill(campaign: Campaign, count: int) -> None:
    for i in range(count):
        a, b = campaign.both("PUT", f"/v2/keys/fill/k{i % 50}", {}, {"value": str(i)})
        if i % 100 == 0:
            campaign.compare(f"fill {i}", a, b)


def _current_index(campaign: Campaign) -> int:
    _, headers, _ = campaign.etcd.request("GET", "/v2/keys/", {})
    return int(headers["x-etcd-index"])


def run_sequence(campaign: Campaign, seed: int, length: int) -> None:
    rng = random.Random(seed)
    short = rng.random() < 0.2
    ttls = SHORT_TTLS if short else LONG_TTLS
    base = f"/v2/keys/s{seed}"
    seen_index: dict[str, int] = {}
    label = f"seed {seed}"

    def key() -> str:
        return rng.choice(KEYS)

    def value_form(form: dict) -> dict:
        form["value"] = rng.choice(VALUES)
        return form

    def ttl_form(form: dict) -> dict:
        if rng.random() < 0.3:
            ttl = rng.choice(ttls)
            form["ttl"] = str(ttl)
            if short:
                campaign.max_expiry = max(campaign.max_expiry, time.monotonic() + ttl)
        elif rng.random() < 0.1:
            form["ttl"] = ""
        return form

    def remember(k: str, answer: Answer) -> None:
        try:
            node = json.loads(answer.body).get("node", {})
            if "modifiedIndex" in node:
                seen_index[k] = node["modifiedIndex"]
        except (ValueError, AttributeError):
            pass

    for step in range(length):
        op = rng.choice(
            [
                "set", "set", "create", "update", "cas", "cas", "cad", "delete", "delete_dir", "mkdir", "get",
                "get", "post", "refresh", "wait_past", "wait_next", "bad", "novalue",
            ]
        )  # fmt: skip
        k = key()
        path = f"{base}/{k}"
        where = f"{label} step {step} {op} {k}"
        query: dict = {}
        form: dict | None = None
        method = "PUT"
        unsorted = False
        if op == "set":
            form = ttl_form(value_form({}))
            if rng.random() < 0.15:
                path = f"{base}/{rng.choice(DIRS)}"
                form = ttl_form({"dir": "true"})
        elif op == "create":
            query = {"prevExist": "false"}
            form = ttl_form(value_form({}))
        elif op == "update":
            query = {"prevExist": "true"}
            form = ttl_form(value_form({}) if rng.random() < 0.8 else {})
            if rng.random() < 0.2:
                path = f"{base}/{rng.choice(DIRS)}"
                form = ttl_form({})
        elif op == "cas":
            form = ttl_form(value_form({}))
            choice = rng.random()
            if choice < 0.4:
                query = {"prevValue": rng.choice([v for v in VALUES if v])}
            elif choice < 0.8:
                query = {"prevIndex": str(seen_index.get(k, rng.randint(1, 2000)))}
            else:
                query = {"prevValue": rng.choice(VALUES[:2]), "prevIndex": str(seen_index.get(k, 7))}
            if rng.random() < 0.2:
                query["prevExist"] = "true"
        elif op == "cad":
            method = "DELETE"
            if rng.random() < 0.5:
                query = {"prevValue": rng.choice([v for v in VALUES if v])}
            else:
                query = {"prevIndex": str(seen_index.get(k, rng.randint(1, 2000)))}
        elif op == "delete":
            method = "DELETE"
        elif op == "delete_dir":
            method = "DELETE"
            path = f"{base}/{rng.choice(DIRS)}"
            query = rng.choice([{"dir": "true"}, {"recursive": "true"}, {}])
        elif op == "mkdir":
            path = f"{base}/{rng.choice(DIRS)}"
            query = {"dir": "true", "prevExist": "false"}
            form = ttl_form({})
        elif op == "get":
            method = "GET"
            if rng.random() < 0.5:
                path = rng.choice([base, f"{base}/d", f"{base}/q"])
            query = {"recursive": rng.choice(["true", "false"])}
            if rng.random() < 0.7:
                query["sorted"] = "true"
            else:
                unsorted = True
        elif op == "post":
            method = "POST"
            path = f"{base}/q"
            form = ttl_form(value_form({}))
            if rng.random() < 0.2:
                form = {"dir": "true"}
        elif op == "refresh":
            query = {"refresh": "true", "prevExist": "true"}
            form = ttl_form({})
            if "ttl" not in form and rng.random() < 0.7:
                form["ttl"] = str(ttls[-1])
                if short:
                    campaign.max_expiry = max(campaign.max_expiry, time.monotonic() + ttls[-1])
        elif op == "wait_past":
            current = _current_index(campaign)
            since = max(1, current - rng.randint(0, 1200))
            query = {"wait": "true", "waitIndex": str(since), "recursive": rng.choice(["true", "false"])}
            _wait(campaign, base if rng.random() < 0.5 else path, query, where, None)
            continue
        elif op == "wait_next":
            _wait_next(campaign, rng, base, where)
            continue
        elif op == "bad":
            method, query, form = rng.choice(
                [
                    ("PUT", {"ttl": "abc"}, {"value": "x"}),
                    ("PUT", {"prevIndex": "x"}, {"value": "x"}),
                    ("GET", {"waitIndex": "-1", "wait": "true"}, None),
                    ("PUT", {"prevValue": ""}, {"value": "x"}),
                    ("PUT", {"wait": "true"}, {"value": "x"}),
                    ("PUT", {"refresh": "true"}, {"value": "x", "ttl": "5"}),
                    ("PUT", {"refresh": "true"}, {}),
                    ("GET", {"recursive": "maybe"}, None),
                    ("PUT", {"prevExist": "2"}, {"value": "x"}),
                    ("DELETE", {"sorted": "yes"}, None),
                    ("PATCH", {}, None),
                ]
            )
        elif op == "novalue":
            query = {"noValueOnSuccess": "true"}
            form = value_form({})
        a, b = campaign.both(method, path, query, form)
        campaign.compare(where, a, b, unsorted)
        remember(k, a)
    # Let every TTL this sequence set run out on both servers, so the next sequence starts from the same index;
    # then read the first expire (or other) event under the sequence's keys since its last operation.
    left = campaign.max_expiry - time.monotonic()
    if left > -1.5:
        before = _current_index(campaign)
        time.sleep(left + 1.5)
        if short:
            query = {"wait": "true", "recursive": "true", "waitIndex": str(before + 1)}
            _wait(campaign, base, query, f"{label} after expiry", None)


def _wait_next(campaign: Campaign, rng: random.Random, base: str, where: str) -> None:
    """A watcher for the next event on both servers, woken by the same write."""
    k = rng.choice(KEYS)
    watch_path = rng.choice([f"{base}/{k}", f"{base}/d", base])
    query = {"wait": "true", "recursive": rng.choice(["true", "false"])}
    _wait(campaign, watch_path, query, where, (f"{base}/{k}", rng.choice(VALUES)))


def _wait(campaign: Campaign, path: str, query: dict, where: str, write: tuple[str, str] | None) -> None:
    """A wait on both servers: headers compared, then (after ``write``, if any) the event each sends within half a
    second (or that none came)."""
    opened = [campaign.etcd.open_wait(path, query), campaign.etcdx.open_wait(path, query)]
    heads = [Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, b"") for _, r in opened]
    campaign.compare(where + " (wait headers)", heads[0], heads[1])
    if write is not None:
        time.sleep(0.05)
        a, b = campaign.both("PUT", write[0], {}, {"value": write[1]})
        campaign.compare(where + " (write)", a, b)
    bodies: list[list] = [[], []]
    threads = [
        threading.Thread(target=_read_event, args=(conn, response, 0.5, out))
        for (conn, response), out in zip(opened, bodies, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    campaign.compare(where + " (event)", Answer(200, {}, bodies[0][0]), Answer(200, {}, bodies[1][0]))


def run(etcd_port: int, etcdx_port: int, seeds: range, length: int) -> Campaign:
    campaign = Campaign(Server(etcd_port), Server(etcdx_port))
    fill(campaign, FILL)
    for seed in seeds:
        run_sequence(campaign, seed, length)
    return campaign

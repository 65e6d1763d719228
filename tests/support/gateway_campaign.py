"""The /v3 gateway differential: the same curl-style requests to etcd 3.5.1 and to etcdx, compared.

``CASES`` is a fixed script that reaches every /v3 path (its errors too: bad JSON, wrong types, unknown
paths, wrong methods, auth refusals) and the streams (watch with history, progress and cancel in one body,
lease keep-alive, snapshot, election observe). ``random_bodies(seed)`` adds seeded random request bodies
(valid and broken JSON, wrong types, bad base64, unknown enum names) for a few paths, so the JSON reader's
error texts are checked against Go's.

Compared: HTTP status, Content-Type, Grpc-Metadata-Content-Type, the CORS headers, and the body: each JSON
document (one per line for streams) after ``normalise``, a non-JSON body as it is. Normalised, and why:
- header cluster_id/member_id, member IDs, leader, peer/client URLs: derived from each server's ports and
  start time (so a members list, ordered by ID, is compared in a fixed order);
- header raft_term, raftTerm, raftIndex, raftAppliedIndex: the two logs hold different entries (etcd's
  membership and version entries, etcdx's own) and elections;
- dbSize, dbSizeInUse, hash, the snapshot's blobs: the two backends are different formats (bbolt, LMDB);
- the simple token's value: random by design;
- the key of a lock held through a fresh session and the ID of a learner added: random IDs.
Revisions are compared as they are: both servers see the same writes in the same order.
"""

from __future__ import annotations

import http.client
import json
import random
from dataclasses import dataclass, field

_TOKEN = "{token}"
# Deliberate: etcd 3.5.1 lets anyone call Status (GHSA-q8m4-xhhv-38mg); etcdx needs a user (docs/differences.md).
_STATUS_NEEDS_USER = "Status needs an authenticated user in etcdx (docs/differences.md)"
# At a Grpc-Timeout deadline etcd answers DEADLINE_EXCEEDED (4, 504) when its gateway's client deadline fires
# first, UNKNOWN (2, 500) when its server's handler returns the context's error first: either, from run to run.
# etcdx answers 4 (docs/differences.md, "Lock waiting past its deadline").
_DEADLINE_RACE = "etcd's code at a deadline is 2 or 4 from run to run; etcdx's is 4"
_STREAM_READ_SECONDS = 1.0


@dataclass(frozen=True)
class Case:
    path: str
    body: str = "{}"
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    lines: int = 0  # a stream: read this many lines (or until the end or a pause of _STREAM_READ_SECONDS)
    differs: str = ""  # why etcdx's service (not its gateway) answers otherwise: mismatches are listed as known
    then: tuple[Case, ...] = ()  # a stream: sent (to the same server) once its first line arrived


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Campaign:
    checked: int = 0
    failures: list[str] = field(default_factory=list)
    paths: set[str] = field(default_factory=set)
    known: list[str] = field(default_factory=list)


def _auth(token: bool = True) -> tuple[tuple[str, str], ...]:
    return (("Authorization", _TOKEN),) if token else ()


def b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


FOO, BAR = b64("foo"), b64("bar")
CASES: list[Case] = [
    # KV
    Case("/v3/kv/put", f'{{"key":"{FOO}","value":"{BAR}"}}'),
    Case("/v3/kv/put", f'{{"key":"{b64("foo2")}","value":"{b64("v2")}","prev_kv":true}}'),
    Case("/v3/kv/put", f'{{"key":"{b64("foo2")}","value":"{b64("v3")}","prevKv":true}}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}"}}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}","range_end":"{b64("fop")}","sort_order":"DESCEND","sort_target":"MOD"}}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}","rangeEnd":"AA==","keys_only":true,"limit":"1"}}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}","range_end":"AA==","count_only":true}}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}","revision":2,"serializable":true}}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}","revision":"100"}}'),
    Case("/v3/kv/range", '{"key":""}'),
    Case("/v3/kv/range", ""),
    Case("/v3/kv/range", "{bad"),
    Case("/v3/kv/range", '{"key":5}'),
    Case("/v3/kv/range", '{"key":"Zm9"}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}","limit":1.5}}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}","sort_order":"BOGUS"}}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}","sort_order":true}}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}"'),
    Case("/v3/kv/range", "[1]"),
    Case("/v3/kv/range", f'{{"key":"{FOO}"}} trailing'),
    Case("/v3beta/kv/range", f'{{"key":"{FOO}"}}'),
    Case("/v3/kv/range?x=1", f'{{"key":"{FOO}"}}'),
    Case("/v3/kv/range", method="GET", body=""),
    Case("/v3/kv/range", method="PUT"),
    Case("/v3/kv/range", method="OPTIONS", body=""),
    Case("/v3/kv/nope"),
    Case("/v3/kv/range/"),
    Case("/v3//kv/range"),
    Case("/v3alpha/kv/range"),
    Case(
        "/v3/kv/txn",
        f'{{"compare":[{{"key":"{FOO}","result":"EQUAL","target":"VALUE","value":"{BAR}"}}],'
        f'"success":[{{"request_put":{{"key":"{b64("t")}","value":"{b64("1")}"}}}},'
        f'{{"request_range":{{"key":"{FOO}"}}}}],"failure":[{{"request_delete_range":{{"key":"{FOO}"}}}}]}}',
    ),
    Case(
        "/v3/kv/txn",
        f'{{"compare":[{{"key":"{FOO}","target":"VERSION","version":"7"}}],'
        f'"failure":[{{"requestTxn":{{"success":[{{"request_range":{{"key":"{b64("t")}"}}}}]}}}}]}}',
    ),
    Case("/v3/kv/txn", '{"success":{"request_put":{}}}'),
    Case("/v3/kv/txn", f'{{"success":[{{"request_put":{{"key":"{FOO}"}}}},{{"request_put":{{"key":"{FOO}"}}}}]}}'),
    # Limits: past --max-request-bytes (etcd's check), past the gRPC receive limit (the transport's).
    Case("/v3/kv/put", f'{{"key":"{b64("big")}","value":"{b64("v" * 1_600_000)}"}}'),
    Case("/v3/kv/put", f'{{"key":"{b64("big")}","value":"{b64("v" * 2_200_000)}"}}'),
    Case("/v3/kv/deleterange", f'{{"key":"{b64("foo2")}","prev_kv":true}}'),
    Case("/v3/kv/deleterange", f'{{"key":"{b64("none")}"}}'),
    Case("/v3/kv/compaction", '{"revision":"2"}'),
    Case("/v3/kv/compaction", '{"revision":"2","physical":true}'),
    Case("/v3/kv/compaction", '{"revision":"200"}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}","revision":"1"}}'),
    # Watch: history from revision 3, then progress and cancel in one body.
    Case("/v3/watch", f'{{"create_request":{{"key":"{FOO}","range_end":"AA==","start_revision":"3"}}}}', lines=2),
    Case(
        "/v3/watch",
        f'{{"create_request":{{"key":"{FOO}","prev_kv":true}}}} {{"progress_request":{{}}}} '
        '{"cancel_request":{"watch_id":"0"}}',
        lines=3,
    ),
    Case("/v3/watch", f'{{"create_request":{{"key":"{FOO}","start_revision":"1"}}}}', lines=1),
    # A live watch: events of writes made while it streams, with their previous values.
    Case(
        "/v3/watch",
        f'{{"create_request":{{"key":"{b64("live")}","range_end":"{b64("livf")}","prev_kv":true}}}}',
        lines=4,
        then=(
            Case("/v3/kv/put", f'{{"key":"{b64("live")}","value":"{b64("1")}"}}'),
            Case("/v3/kv/put", f'{{"key":"{b64("live/a")}","value":"{b64("2")}"}}'),
            Case("/v3/kv/deleterange", f'{{"key":"{b64("live")}","range_end":"{b64("livf")}"}}'),
        ),
    ),
    Case(
        "/v3/watch", f'{{"create_request":{{"key":"{b64("live")}","filters":["NOPUT"],"start_revision":"2"}}}}', lines=2
    ),
    Case("/v3/watch", '{"create_request":{"key":5}}', lines=1),
    Case("/v3/watch", f'{{"create_request":{{"key":"{FOO}"}}}} {{"create_request":{{"key":5}}}}', lines=2),
    Case("/v3/watch", f'{{"create_request":{{"key":"{FOO}"}}}} {{bad', lines=2),
    # Refused creates: an empty range, a watch id already in use.
    Case("/v3/watch", f'{{"create_request":{{"key":"{b64("b")}","range_end":"{b64("a")}","watch_id":"4"}}}}', lines=1),
    Case(
        "/v3/watch",
        f'{{"create_request":{{"key":"{FOO}","watch_id":"3"}}}} {{"create_request":{{"key":"{BAR}","watch_id":"3"}}}}',
        lines=2,
    ),
    Case("/v3/election/observe", '{"name":5}', lines=1),
    Case("/v3/maintenance/snapshot", "{bad", lines=1),
    # Lease
    Case("/v3/lease/grant", '{"TTL":"60","ID":"1234"}'),
    Case("/v3/lease/grant", '{"TTL":"60","ID":"1234"}'),
    Case("/v3/lease/grant", '{"TTL":"9000000001","ID":"1235"}'),
    Case("/v3/kv/put", f'{{"key":"{b64("leased")}","value":"{BAR}","lease":"1234"}}'),
    Case("/v3/kv/put", f'{{"key":"{b64("leased")}","value":"{BAR}","lease":"999"}}'),
    Case("/v3/lease/timetolive", '{"ID":"1234","keys":true}'),
    Case("/v3/kv/lease/timetolive", '{"ID":"1234"}'),
    Case("/v3/lease/leases"),
    Case("/v3/kv/lease/leases"),
    Case("/v3/lease/keepalive", '{"ID":"1234"} {"ID":"77"}', lines=2),
    Case("/v3/lease/revoke", '{"ID":"1234"}'),
    Case("/v3/kv/lease/revoke", '{"ID":"1234"}'),
    Case("/v3/lease/timetolive", '{"ID":"1234"}'),
    # Lock and election on a lease the case grants.
    Case("/v3/lease/grant", '{"TTL":"60","ID":"4321"}'),
    Case("/v3/lock/lock", f'{{"name":"{b64("lk")}","lease":"4321"}}'),
    # Grpc-Timeout is the call's deadline: a lock held by another session, a watch that outlives it.
    Case("/v3/lease/grant", '{"TTL":"60","ID":"4322"}'),
    Case(
        "/v3/lock/lock",
        f'{{"name":"{b64("lk")}","lease":"4322"}}',
        headers=(("Grpc-Timeout", "1S"),),
        differs=_DEADLINE_RACE,
    ),
    Case(
        "/v3/watch",
        f'{{"create_request":{{"key":"{FOO}"}}}}',
        headers=(("Grpc-Timeout", "500m"),),
        lines=3,
        differs=_DEADLINE_RACE,
    ),
    Case("/v3/kv/range", f'{{"key":"{FOO}"}}', headers=(("Grpc-Timeout", "bogus"),)),
    Case("/v3/lock/unlock", f'{{"key":"{b64("lk/10e1")}"}}'),
    Case("/v3/lock/lock", f'{{"name":"{b64("lk")}","lease":"999"}}'),
    Case("/v3/election/campaign", f'{{"name":"{b64("el")}","lease":"4321","value":"{b64("v1")}"}}'),
    Case("/v3/election/leader", f'{{"name":"{b64("el")}"}}'),
    Case("/v3/election/leader", f'{{"name":"{b64("none")}"}}'),
    Case("/v3/election/observe", f'{{"name":"{b64("el")}"}}', lines=1),
    Case(
        "/v3/election/proclaim",
        f'{{"leader":{{"name":"{b64("el")}","key":"{b64("el/10e1")}","rev":"99","lease":"4321"}},'
        f'"value":"{b64("v2")}"}}',
    ),
    Case("/v3/election/resign", f'{{"leader":{{"name":"{b64("el")}","key":"{b64("el/10e1")}","lease":"4321"}}}}'),
    # Cluster. etcd 3.5.1's raft drops a membership change proposed before the previous one is marked applied in
    # it (its log: "ignoring conf change ... pending"), and the call then waits for its deadline (none through the
    # gateway): a request that takes a Ready turn (a linearizable read, a write) goes between two changes.
    Case("/v3/cluster/member/list"),
    Case("/v3/cluster/member/promote", '{"ID":"5"}'),
    Case("/v3/cluster/member/list", '{"linearizable":true}'),
    Case("/v3/cluster/member/update", '{"ID":"5","peerURLs":["http://127.0.0.1:1"]}'),
    Case("/v3/cluster/member/list", '{"linearizable":true}'),
    Case("/v3/cluster/member/remove", '{"ID":"5"}'),
    # Maintenance
    Case("/v3/maintenance/status"),
    Case("/v3/maintenance/alarm"),
    Case("/v3/maintenance/alarm", '{"action":"DEACTIVATE","memberID":"1","alarm":"NOSPACE"}'),
    Case("/v3/maintenance/defragment"),
    Case("/v3/maintenance/hash"),
    Case("/v3/maintenance/hash", '{"revision":"3"}'),
    Case("/v3/maintenance/hashkv"),
    Case("/v3/maintenance/snapshot", lines=3),
    Case("/v3/maintenance/transfer-leadership", '{"targetID":"5"}'),
    # Downgrade: no valid ENABLE (etcd 3.5.1 records the job, then answers "request timed out" after 7 s).
    Case("/v3/maintenance/downgrade", '{"action":"VALIDATE","version":"x"}'),
    Case("/v3/maintenance/downgrade", '{"action":"VALIDATE","version":"3.4"}'),
    Case("/v3/maintenance/downgrade", '{"version":"3.4.2-rc.1+build"}'),
    Case("/v3/maintenance/downgrade", '{"action":"VALIDATE","version":"3.5"}'),
    Case("/v3/maintenance/downgrade", '{"action":"ENABLE","version":"3.3"}'),
    Case("/v3/maintenance/downgrade", '{"action":"CANCEL"}'),
    Case("/v3/maintenance/downgrade", '{"action":"BOGUS"}'),
    # Auth
    Case("/v3/auth/status"),
    Case("/v3/auth/enable"),
    Case("/v3/auth/user/add", '{"name":"","password":"x"}'),
    # Strings: an unpaired surrogate escape, HTML characters and non-ASCII text, as Go reads and writes them.
    Case("/v3/auth/user/add", '{"name":"a\\ud800b<&>\\u00e9ü","password":"x"}'),
    Case("/v3/auth/user/list"),
    Case("/v3/auth/user/delete", '{"name":"a\\ufffdb<&>éü"}'),
    Case("/v3/auth/user/add", '{"name":"root","password":"pw"}'),
    Case("/v3/auth/user/add", '{"name":"root","password":"pw"}'),
    Case("/v3/auth/user/add", '{"name":"u1","password":"p1"}'),
    Case("/v3/auth/role/add", '{"name":"r1"}'),
    Case("/v3/auth/role/grant", f'{{"name":"r1","perm":{{"permType":"READWRITE","key":"{FOO}","range_end":"AA=="}}}}'),
    Case("/v3/auth/user/grant", '{"user":"root","role":"root"}'),
    Case("/v3/auth/user/grant", '{"user":"u1","role":"r1"}'),
    Case("/v3/auth/user/grant", '{"user":"u1","role":"nope"}'),
    Case("/v3/auth/enable"),
    Case("/v3/kv/range", f'{{"key":"{FOO}"}}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}"}}', headers=(("Authorization", "bogus"),)),
    Case("/v3/auth/authenticate", '{"name":"root","password":"bad"}'),
    Case("/v3/auth/authenticate", '{"name":"root","password":"pw"}'),
    Case("/v3/kv/range", f'{{"key":"{FOO}"}}', headers=_auth()),
    Case("/v3/kv/range", f'{{"key":"{FOO}","count_only":true}}', headers=(("Grpc-Metadata-Token", _TOKEN),)),
    Case("/v3/auth/user/get", '{"name":"u1"}', headers=_auth()),
    Case("/v3/auth/user/list", headers=_auth()),
    Case("/v3/auth/role/get", '{"role":"r1"}', headers=_auth()),
    Case("/v3/auth/role/get", '{"role":"root"}', headers=_auth()),
    Case("/v3/auth/role/list", headers=_auth()),
    Case("/v3/auth/role/revoke", f'{{"role":"r1","key":"{FOO}","range_end":"AA=="}}', headers=_auth()),
    Case("/v3/auth/user/revoke", '{"name":"u1","role":"r1"}', headers=_auth()),
    Case("/v3/auth/user/changepw", '{"name":"u1","password":"p2"}', headers=_auth()),
    Case("/v3/auth/user/list"),
    Case("/v3/maintenance/status", differs=_STATUS_NEEDS_USER),
    Case("/v3/maintenance/snapshot", lines=1),
    Case("/v3/watch", f'{{"create_request":{{"key":"{FOO}"}}}}', lines=1),
    Case("/v3/watch", f'{{"create_request":{{"key":"{b64("b")}","range_end":"{b64("a")}","watch_id":"7"}}}}', lines=1),
    Case("/v3/auth/role/delete", '{"role":"r1"}', headers=_auth()),
    Case("/v3/auth/user/delete", '{"name":"u1"}', headers=_auth()),
    Case("/v3/auth/disable", headers=_auth()),
    Case("/v3/auth/status"),
    Case("/v3/kv/range", f'{{"key":"{FOO}","range_end":"AA=="}}'),
    # Last: etcd adds the learner (a member that never starts), which the cases above must not see.
    Case("/v3/cluster/member/add", '{"peerURLs":["http://127.0.0.1:1"],"isLearner":true}'),
]

# For servers started with ACCESS_FLAGS: etcd's access controller (host whitelist, CORS, OPTIONS) on the gateway
# and on the other HTTP paths.
ACCESS_FLAGS = ("--cors", "http://ok.example:8080", "--host-whitelist", "localhost,ok.example")
_OK_HOST, _OK_ORIGIN = ("Host", "ok.example:2379"), ("Origin", "http://ok.example:8080")
ACCESS_CASES: list[Case] = [
    Case("/v3/kv/range", f'{{"key":"{FOO}"}}'),  # Host 127.0.0.1:port: not listed
    Case("/v3/kv/range", f'{{"key":"{FOO}"}}', headers=(("Host", "evil.example"),)),
    Case("/v3/kv/range", f'{{"key":"{FOO}"}}', headers=(("Host", "localhost:1"),)),
    Case("/v3/kv/range", f'{{"key":"{FOO}"}}', headers=(_OK_HOST, _OK_ORIGIN)),
    Case("/v3/kv/range", f'{{"key":"{FOO}"}}', headers=(_OK_HOST, ("Origin", "http://bad.example"))),
    Case("/v3/kv/put", f'{{"key":"{FOO}","value":"{BAR}"}}', method="OPTIONS", headers=(_OK_HOST, _OK_ORIGIN)),
    Case("/health", "", method="GET", headers=(("Host", "evil.example:80"),)),
    Case("/version", "", method="GET", headers=(_OK_HOST, _OK_ORIGIN)),
    Case("/v3/nope", headers=(_OK_HOST, _OK_ORIGIN)),
]
# For servers started with --enable-grpc-gateway=false: /v3/ is an unknown path.
NO_GATEWAY_CASES: list[Case] = [Case("/v3/kv/range", f'{{"key":"{FOO}"}}'), Case("/v3beta/kv/put")]

_IDS = {"cluster_id", "member_id", "leader", "ID", "raft_term", "raftTerm", "raftIndex", "raftAppliedIndex"}
_BACKEND = {"dbSize", "dbSizeInUse", "hash", "blob", "token"}


def normalise(value, parent: str = ""):
    """``value`` with the fields named in the module docstring replaced by a marker."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _BACKEND or (key in _IDS and parent in ("header", "members", "member", "")):
                out[key] = "<normalised>"
            elif key in ("peerURLs", "clientURLs"):
                out[key] = ["<url>" for _ in item]
            elif key == "name" and parent == "members":
                out[key] = "<name>"
            else:
                out[key] = normalise(item, key)
        return out
    if isinstance(value, list):
        items = [normalise(item, parent) for item in value]
        # Members are listed by ID, and IDs differ: compared as a set.
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True)) if parent == "members" else items
    return value


def random_bodies(seed: int, count: int = 20) -> list[Case]:
    """Seeded random request bodies: ranges and deletes with fields of random types, and txns whose compares and
    ops (nested txns included) hold random values; a third of them then broken as clients break JSON (cut short,
    a stray character)."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        if rng.random() < 0.5:
            path, body = rng.choice(["/v3/kv/range", "/v3/kv/range", "/v3/kv/deleterange"]), _range_body(rng)
        else:
            path, body = "/v3/kv/txn", _txn_body(rng, 0)
        mutation = rng.random()
        if mutation < 0.15:
            body = body[: rng.randint(0, len(body))]
        elif mutation < 0.33:
            at = rng.randint(0, len(body))
            stray = rng.choice([",", "}", "]", "[", ":", '"', "x", " ", "\\", "\t", "\u00e9", "\x01", "0", "-"])
            body = body[:at] + stray + body[at:]
        cases.append(Case(path, body))
    return cases


_KEYS = [FOO, b64("foo2"), b64("t"), b64("rr"), "Zm9", "Zm9v!", "", "AA==", "Zm9v\\n", "Zg=", "Zg==Zg=="]
_ODD = [
    '"x"',
    "true",
    "false",
    "1",
    "-1",
    "0",
    "-0",
    "01",
    "1.5",
    "1e3",
    "1E+2",
    "-",
    '"-3"',
    '"07"',
    '""',
    '" 5"',
    '"18446744073709551616"',
    "9223372036854775808",
    "null",
    "[]",
    "{}",
    '"\\u00e9"',
    '"\\ud83d\\ude00"',
    '"a\\nb"',
    '"\\q"',
    '"\\u12"',
    "[1,2,300]",
    '[1,"x"]',
    "nul",
    "tru",
]


def _value(rng: random.Random, proper: str) -> str:
    """``proper`` most of the time, else a value of a random type or a broken one."""
    return proper if rng.random() < 0.7 else rng.choice(_ODD)


def _key(rng: random.Random) -> str:
    return f'"{rng.choice(_KEYS)}"'


def _range_body(rng: random.Random) -> str:
    fields = [f'"key":{_value(rng, _key(rng))}']
    for name, proper in rng.sample(
        [
            ("limit", '"2"'),
            ("revision", "0"),
            ("serializable", "true"),
            ("sort_order", '"DESCEND"'),
            ("sort_target", '"VALUE"'),
            ("range_end", '"AA=="'),
            ("keys_only", "false"),
            ("min_mod_revision", '"1"'),
        ],
        rng.randint(0, 3),
    ):
        fields.append(f'"{name}":{_value(rng, proper)}')
    return "{" + ",".join(fields) + "}"


def _txn_body(rng: random.Random, depth: int) -> str:
    compares = []
    for _ in range(rng.randint(0, 2)):
        target, field_name, proper = rng.choice(
            [
                ("VERSION", "version", '"0"'),
                ("CREATE", "create_revision", "2"),
                ("MOD", "mod_revision", '"3"'),
                ("VALUE", "value", f'"{BAR}"'),
                ("LEASE", "lease", '"0"'),
            ]
        )
        result = _value(rng, rng.choice(['"EQUAL"', '"GREATER"', '"LESS"', '"NOT_EQUAL"']))
        compares.append(
            f'{{"key":{_key(rng)},"result":{result},"target":{_value(rng, chr(34) + target + chr(34))},'
            f'"{field_name}":{_value(rng, proper)}}}'
        )
    body = f'{{"compare":{_value(rng, "[" + ",".join(compares) + "]")}'
    for branch in ("success", "failure"):
        ops = []
        for _ in range(rng.randint(0, 2)):
            kind = rng.choice(["request_range", "request_put", "request_delete_range", "requestTxn"])
            if kind == "requestTxn" and depth < 1:
                ops.append(f'{{"{kind}":{_txn_body(rng, depth + 1)}}}')
            elif kind == "request_put":
                ops.append(f'{{"{kind}":{{"key":{_key(rng)},"value":{_value(rng, chr(34) + BAR + chr(34))}}}}}')
            else:
                ops.append(f'{{"request_range":{_value(rng, _range_body(rng))}}}')
        body += f',"{branch}":{_value(rng, "[" + ",".join(ops) + "]")}'
    return body + "}"


def request(port: int, case: Case, token: str) -> Answer:
    headers = {name: value.replace(_TOKEN, token) for name, value in case.headers}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = case.body.encode() if case.method != "GET" else None
        connection.request(case.method, case.path, body=body, headers=headers)
        response = connection.getresponse()
        if case.then:
            data = _read_lines(connection, response, 1)
            for later in case.then:
                request(port, later, token)
            data += _read_lines(connection, response, case.lines - data.count(b"\n"))
        else:
            data = _read_lines(connection, response, case.lines) if case.lines else response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    except TimeoutError:
        return Answer(0, {}, b"(no answer within 10 s)")
    finally:
        connection.close()


def _read_lines(connection: http.client.HTTPConnection, response: http.client.HTTPResponse, lines: int) -> bytes:
    connection.sock.settimeout(_STREAM_READ_SECONDS)
    data = b""
    try:
        while data.count(b"\n") < lines:
            chunk = response.read1(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data


def _documents(body: bytes) -> list:
    out = []
    for line in body.split(b"\n"):
        if not line.strip():
            continue
        try:
            out.append(normalise(json.loads(line)))
        except ValueError:
            out.append(line)
    return out


_COMPARED_HEADERS = (
    "content-type",
    "grpc-metadata-content-type",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "location",
)


def compare(case: Case, etcd: Answer, etcdx: Answer) -> list[str]:
    problems = []
    if etcd.status != etcdx.status:
        problems.append(f"status {etcd.status} != {etcdx.status}")
    for name in _COMPARED_HEADERS:
        if etcd.headers.get(name) != etcdx.headers.get(name):
            problems.append(f"header {name}: {etcd.headers.get(name)!r} != {etcdx.headers.get(name)!r}")
    if ("date" in etcd.headers) != ("date" in etcdx.headers):
        problems.append("a Date header on one answer only")
    if _documents(etcd.body) != _documents(etcdx.body):
        problems.append(f"body\n  etcd:  {etcd.body[:600]!r}\n  etcdx: {etcdx.body[:600]!r}")
    return [f"{case.method} {case.path} {case.body[:200]!r}: {problem}" for problem in problems]


def run(etcd_port: int, etcdx_port: int, cases: list[Case]) -> Campaign:
    """Sends each case to both servers in turn (a token from /v3/auth/authenticate is used by later cases)."""
    campaign = Campaign()
    tokens = {etcd_port: "", etcdx_port: ""}
    for case in cases:
        answers = {}
        for port in (etcd_port, etcdx_port):
            answers[port] = answer = request(port, case, tokens[port])
            if case.path.endswith("/auth/authenticate") and answer.status == 200:
                tokens[port] = json.loads(answer.body)["token"]
        campaign.checked += 1
        campaign.paths.add(case.path)
        problems = compare(case, answers[etcd_port], answers[etcdx_port])
        if case.differs:
            campaign.known.extend(f"{problem} [{case.differs}]" for problem in problems[:1])
        else:
            campaign.failures.extend(problems)
    return campaign

"""etcdctl's user, role and auth commands, and every refusal of KV, Watch, Lease, Lock, Election, Maintenance
and Cluster operations, against etcdx and real etcd 3.5.1: the printed output must be identical.

Each scenario step runs as root, as alice (read on "foo" and its prefix, readwrite on "a/" and its prefix)
or as nobody. The same steps run on both servers, started alike (tests/support/auth_servers.py); output is
compared after normalising only what identifies a server or a lease: member and cluster IDs and lease IDs
(12 to 16 hex digits), and host:port. Steps marked STRICTER are the known holes of etcd 3.5.1 (etcdx.auth.policy
.ETCD_3_5_1): etcd lets them through (or fails later, at a step it does check), etcdx refuses them at once
with the error given.

Matrix: etcdctl 3.5.1 and 3.4 x plain and TLS x simple and JWT tokens. CI runs two opposite corners;
ETCDX_AUTH_DIFF=full runs all eight.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from pathlib import Path

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2
from tests.integration.test_auth_holes import PASSWORD, Client, login, setup_users
from tests.support.auth_servers import make_material, secured
from tests.support.procs import ETCDCTL, ETCDCTL_34

SAME, STRICTER = "same", "stricter"
USERS = {"root": ["--user", "root:rootpw"], "alice": ["--user", "alice:alicepw"], "-": []}

# (who, etcdctl arguments, stdin, kind[, the error etcdx answers for a STRICTER step]); "{lease}" is the lease
# the last "lease grant" printed on that server.
STEPS = [
    ("-", "user add root:rootpw", None, SAME),
    ("-", "user add alice:alicepw", None, SAME),
    ("-", "user add alice:again", None, SAME),
    ("-", "role add reader", None, SAME),
    ("-", "role add reader", None, SAME),
    ("-", "role add apps", None, SAME),
    ("-", "role grant-permission reader read foo --prefix", None, SAME),
    ("-", "role grant-permission apps readwrite a/ --prefix", None, SAME),
    ("-", "role grant-permission nosuch read x", None, SAME),
    ("-", "user grant-role alice reader", None, SAME),
    ("-", "user grant-role alice apps", None, SAME),
    ("-", "user grant-role alice nosuch", None, SAME),
    ("-", "auth enable", None, SAME),
    ("-", "user grant-role root root", None, SAME),
    ("-", "auth enable", None, SAME),
    ("-", "auth status", None, SAME),
    ("root", "auth enable", None, SAME),
    ("root", "auth status", None, SAME),
    ("root", "put foo v1", None, SAME),
    ("root", "put foo/x v2", None, SAME),
    ("root", "put zoo v3", None, SAME),
    ("root", "user list", None, SAME),
    ("root", "user get alice", None, SAME),
    ("root", "user get nosuch", None, SAME),
    ("root", "role list", None, SAME),
    ("root", "role get reader", None, SAME),
    ("root", "role get apps", None, SAME),
    ("root", "role get nosuch", None, SAME),
    ("root", "user add bob:bobpw", None, SAME),
    ("root", "user add bob:bobpw", None, SAME),
    ("root", "user passwd bob --interactive=false", "newbob\n", SAME),
    ("root", "user delete bob", None, SAME),
    ("root", "user delete bob", None, SAME),
    ("root", "user add nopw --no-password", None, SAME),
    ("-", "--user nopw:x get foo", None, SAME),
    ("root", "user get nopw", None, SAME),
    ("root", "user delete nopw", None, SAME),
    ("root", "user delete root", None, SAME),
    ("root", "user revoke-role root root", None, SAME),
    ("root", "role delete root", None, SAME),
    ("root", "user revoke-role alice nosuch", None, SAME),
    ("root", "role add tmp", None, SAME),
    ("root", "role grant-permission tmp write t1 t5", None, SAME),
    ("root", "role revoke-permission tmp t1 t5", None, SAME),
    ("root", "role revoke-permission tmp t1 t5", None, SAME),
    ("root", "role delete tmp", None, SAME),
    # no user: every call needs one
    ("-", "get foo", None, SAME),
    ("-", "put foo x", None, SAME),
    ("-", "del foo", None, SAME),
    ("-", "user list", None, SAME),
    ("-", "user get alice", None, SAME),
    ("-", "role list", None, SAME),
    ("-", "role get reader", None, SAME),
    ("-", "user add eve:evepw", None, SAME),
    ("-", "role add evil", None, SAME),
    ("-", "auth disable", None, SAME),
    ("-", "defrag", None, SAME),
    ("-", "lock foo/l echo locked", None, SAME),
    ("-", "elect -l foo/e", None, STRICTER, "etcdserver: user name is empty"),  # its session's LeaseGrant
    ("-", "watch foo", None, SAME),
    ("-", "member list", None, STRICTER, "etcdserver: user name is empty"),
    ("-", "alarm list", None, STRICTER, "rpc error: code = Unknown desc = auth: user name is empty"),
    ("-", "lease grant 100", None, STRICTER, "failed to grant lease (etcdserver: user name is empty)"),
    ("-", "lease list", None, STRICTER, "etcdserver: user name is empty"),
    # alice: what its roles allow, and nothing more
    ("alice", "get foo", None, SAME),
    ("alice", "get foo --prefix", None, SAME),
    ("alice", "get zoo", None, SAME),
    ("alice", "get --from-key foo", None, SAME),
    ("alice", "put foo x", None, SAME),
    ("alice", "put a/k v", None, SAME),
    ("alice", "get a/k", None, SAME),
    ("alice", "del zoo", None, SAME),
    ("alice", "del a/k --prev-kv", None, SAME),
    ("alice", "del foo --prefix", None, SAME),
    ("alice", "txn", 'value("foo") = "v1"\n\nput zoo x\n\n\n', SAME),
    ("alice", "txn", 'value("zoo") = "v3"\n\nput a/t x\n\n\n', SAME),
    ("alice", "txn", 'value("foo") = "v1"\n\nput a/t y\n\nget foo\n\n', SAME),
    ("alice", "user get alice", None, SAME),
    ("alice", "user get root", None, SAME),
    ("alice", "role get reader", None, SAME),
    ("alice", "role get root", None, SAME),
    ("alice", "user list", None, SAME),
    ("alice", "role list", None, SAME),
    ("alice", "user add eve:evepw", None, SAME),
    ("alice", "user delete root", None, SAME),
    ("alice", "user grant-role alice root", None, SAME),
    ("alice", "role grant-permission reader readwrite zoo", None, SAME),
    ("alice", "auth disable", None, SAME),
    ("alice", "auth status", None, SAME),
    ("alice", "watch zoo", None, SAME),
    ("alice", "watch --prefix ''", None, SAME),
    ("alice", "lock zz echo locked", None, SAME),
    ("alice", "lock a/l echo locked", None, SAME),
    ("alice", "elect -l zz", None, SAME),
    ("alice", "elect zz candidate", None, SAME),
    ("alice", "defrag", None, SAME),
    ("alice", "snapshot save {tmp}/alice.db", None, SAME),
    ("alice", "endpoint hashkv", None, SAME),
    ("alice", "member add m2 --peer-urls=http://127.0.0.1:1", None, SAME),
    ("alice", "member remove 1234", None, SAME),
    ("alice", "member update 1234 --peer-urls=http://127.0.0.1:1", None, SAME),
    ("alice", "member promote 1234", None, SAME),
    ("-", "member add m2 --peer-urls=http://127.0.0.1:1", None, SAME),
    ("-", "snapshot save {tmp}/anon.db", None, SAME),
    ("alice", "member list", None, SAME),
    ("alice", "alarm list", None, SAME),
    ("root", "lease grant 100", None, SAME),
    ("root", "put zoo leased --lease={lease}", None, SAME),
    ("alice", "lease timetolive {lease}", None, SAME),
    ("alice", "lease timetolive {lease} --keys", None, STRICTER, "etcdserver: permission denied"),
    ("alice", "lease revoke {lease}", None, SAME),
    ("alice", "lease keep-alive --once {lease}", None, STRICTER, "etcdserver: permission denied"),
    ("root", "lease revoke {lease}", None, SAME),
    ("root", "get zoo", None, SAME),
    # a wrong password, then changes that take rights away
    ("-", "--user alice:wrong get foo", None, SAME),
    ("-", "--user nosuch:pw get foo", None, SAME),
    ("root", "role revoke-permission reader foo --prefix", None, SAME),
    ("alice", "get foo", None, SAME),
    ("root", "user revoke-role alice apps", None, SAME),
    ("alice", "put a/k v", None, SAME),
    ("root", "role delete reader", None, SAME),
    ("root", "user get alice", None, SAME),
    ("root", "user delete alice", None, SAME),
    ("alice", "get foo", None, SAME),
    ("root", "auth disable", None, SAME),
    ("-", "get foo", None, SAME),
    ("-", "user list", None, SAME),
    ("-", "auth status", None, SAME),
    ("-", "user delete root", None, SAME),
    ("-", "auth enable", None, SAME),
]

_HEX_ID = re.compile(r"\b[0-9a-f]{12,16}\b")  # Go prints IDs with %x: no leading zeros
_ADDR = re.compile(r"127\.0\.0\.1:\d+")
_LEASE = re.compile(r"lease ([0-9a-f]+) granted")


def normalise(text: str) -> str:
    return _ADDR.sub("<addr>", _HEX_ID.sub("<id>", text))


def run_steps(server, binary: str) -> list[tuple[int, str, str]]:
    """Every step's (exit code, stdout, 'Error' lines of stderr), normalised."""
    outputs, lease = [], "0"
    for who, args, stdin, *_ in STEPS:
        argv = [binary, "--endpoints", server.url, *server.tls_flags(), "--dial-timeout=5s", "--command-timeout=5s"]
        args = args.replace("{lease}", lease).replace("{tmp}", str(Path(server.data_dir).parent))
        argv += USERS[who] + [a.replace("''", "") for a in args.split(" ")]
        try:
            result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=4)
            code, out, err = result.returncode, result.stdout, result.stderr
        except subprocess.TimeoutExpired as exc:  # a watch or an observe that was let in: still running
            code, out, err = -1, _text(exc.stdout), _text(exc.stderr)
        found = _LEASE.search(out)
        if found:
            lease = found.group(1)
        errors = "\n".join(line for line in err.splitlines() if line.startswith("Error"))
        outputs.append((code, normalise(out), normalise(errors)))
    return outputs


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


CORNERS = [("3.5", False, "simple"), ("3.4", True, "jwt")]
FULL = list(itertools.product(("3.5", "3.4"), (False, True), ("simple", "jwt")))
MATRIX = FULL if os.environ.get("ETCDX_AUTH_DIFF") == "full" else CORNERS
BINARIES = {"3.5": ETCDCTL, "3.4": ETCDCTL_34}


@pytest.mark.parametrize(
    ("client", "tls", "token"), MATRIX, ids=[f"etcdctl-{c}-{'tls' if t else 'plain'}-{k}" for c, t, k in MATRIX]
)
def test_auth_commands_match_etcd(tmp_path, client, tls, token):
    material = make_material(tmp_path)
    binary = BINARIES[client]
    with secured(tmp_path, material, etcdx=True, tls=tls, token=token).start() as etcdx:
        got = run_steps(etcdx, binary)
    with secured(tmp_path, material, etcdx=False, tls=tls, token=token).start() as etcd:
        want = run_steps(etcd, binary)
    mismatches = []
    for step, (g_code, g_out, g_err), (w_code, w_out, w_err) in zip(STEPS, got, want, strict=True):
        label = f"[{step[0]}] etcdctl {step[1]}"
        if step[3] == SAME:
            if (g_code, g_out, g_err) != (w_code, w_out, w_err):
                mismatches.append(f"{label}\n  etcdx: {(g_code, g_out, g_err)}\n  etcd:  {(w_code, w_out, w_err)}")
        elif not (g_code not in (0, -1) and g_err == f"Error: {step[4]}" and (w_code, w_err) != (g_code, g_err)):
            got_want = f"etcdx: {(g_code, g_out, g_err)}\n  etcd:  {(w_code, w_out, w_err)}"
            mismatches.append(f"{label} (a hole of etcd that etcdx closes)\n  {got_want}")
    assert not mismatches, "\n".join(mismatches)


def test_stale_jwt_refusals_match_etcd(tmp_path):
    """A JWT made before an auth change: key operations are refused exactly as etcd refuses them (code Unknown,
    the auth package's text, which clientv3 does not retry with a new token)."""
    material = make_material(tmp_path)
    key_ops = {
        "range": ("kv", "Range", rpc_pb2.RangeRequest(key=b"foo")),
        "serializable range": ("kv", "Range", rpc_pb2.RangeRequest(key=b"foo", serializable=True)),
        "put": ("kv", "Put", rpc_pb2.PutRequest(key=b"a/1", value=b"v")),
        "delete": ("kv", "DeleteRange", rpc_pb2.DeleteRangeRequest(key=b"a/1")),
        "read-only txn": ("kv", "Txn", rpc_pb2.TxnRequest()),
    }
    answers = {}
    for etcdx in (True, False):
        server = secured(tmp_path, material, etcdx=etcdx, tls=False, token="jwt")
        with server.start(), server.channel() as channel:
            setup_users(Client(channel))
            alice = login(channel, "alice", PASSWORD)
            root = login(channel, "root", "rootpw")
            root.call(root.auth.RoleAdd, rpc_pb2.AuthRoleAddRequest(name="any-change"))
            for name, (stub, method, request) in key_ops.items():
                try:
                    alice.call(getattr(getattr(alice, stub), method), request)
                    answers[etcdx, name] = "OK"
                except grpc.RpcError as exc:
                    answers[etcdx, name] = (exc.code(), exc.details())
    for name in key_ops:
        assert (
            answers[True, name] == answers[False, name] == (grpc.StatusCode.UNKNOWN, "auth: revision in header is old")
        )


CN_STEPS = [
    ("root", "user add root:rootpw"),
    ("root", "user grant-role root root"),
    ("root", "user add alice:alicepw"),
    ("root", "role add reader"),
    ("root", "role grant-permission reader read foo --prefix"),
    ("root", "user grant-role alice reader"),
    ("root", "put foo v1"),
    ("root", "auth enable"),
    ("root", "put zoo v2"),
    ("alice", "get foo"),
    ("alice", "get zoo"),
    ("alice", "put foo x"),
    ("alice", "user list"),
    ("alice", "user get alice"),
    ("alice", "--user root:rootpw user list"),
    ("alice", "--user root:wrong user list"),
    ("stranger", "get foo"),
    ("stranger", "user list"),
    ("root", "user list"),
    ("root", "auth disable"),
]


@pytest.mark.parametrize("client", ["3.5", "3.4"], ids=["etcdctl-3.5", "etcdctl-3.4"])
def test_client_certificate_cn_auth_matches_etcd(tmp_path, client):
    """Mutual TLS, no --user: the certificate's CN is the user (root, alice, a stranger no user is named
    after); a password, if also sent, wins."""
    material = make_material(tmp_path)
    certs = {who: material.ca.issue(who, who) for who in ("root", "alice", "stranger")}
    flags = ("--trusted-ca-file", material.ca.path, "--client-cert-auth")
    outputs = []
    for etcdx in (True, False):
        server = secured(tmp_path, material, etcdx=etcdx, tls=True, token="simple", extra=flags)
        server.ready_cert = (certs["root"].cert, certs["root"].key)
        got = []
        with server.start():
            for who, args in CN_STEPS:
                argv = [BINARIES[client], "--endpoints", server.url, *server.tls_flags()]
                argv += ["--cert", certs[who].cert, "--key", certs[who].key, "--dial-timeout=5s", *args.split(" ")]
                done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                errors = "\n".join(line for line in done.stderr.splitlines() if line.startswith("Error"))
                got.append((done.returncode, normalise(done.stdout), normalise(errors)))
        outputs.append(got)
    mismatches = [
        f"[{who}] etcdctl {args}\n  etcdx: {x}\n  etcd:  {e}"
        for (who, args), x, e in zip(CN_STEPS, *outputs, strict=True)
        if x != e
    ]
    assert not mismatches, "\n".join(mismatches)

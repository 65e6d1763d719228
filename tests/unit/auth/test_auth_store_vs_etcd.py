"""Differential: one script of auth admin requests, applied to the AuthStore and sent to real etcd 3.5.1.

After every step both must agree on the outcome (ok, or the same gRPC code and text), on the auth
revision (etcd's AuthStatus), and on what UserGet / RoleGet / UserList / RoleList return.
"""

from __future__ import annotations

import random

import grpc
import pytest
from authfixtures import READ, READWRITE, WRITE, perm

from etcdx import errors
from etcdx.auth import AuthStore
from etcdx.auth.passwords import hash_password
from etcdx.pb.authpb import auth_pb2
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdserverpb import rpc_pb2_grpc
from tests.support.procs import etcd_process

RNG = random.Random(11)

# (store method, args) steps; passwords are given in plaintext and hashed for the store as the API layer would.
SCRIPT = [
    ("role_add", ("",)),
    ("user_add", ("", "pw", False)),
    ("auth_enable", ()),
    ("user_add", ("root", "rootpw", False)),
    ("auth_enable", ()),
    ("user_grant_role", ("root", "root")),
    ("role_add", ("r1",)),
    ("role_add", ("r2",)),
    ("role_add", ("r1",)),
    ("role_grant_permission", ("r1", perm(READ, b"a"))),
    ("role_grant_permission", ("r1", perm(WRITE, b"a", b"c"))),
    ("role_grant_permission", ("r1", perm(READWRITE, b"a", b""))),
    ("role_grant_permission", ("r1", perm(READ, b"b", b"\x00"))),
    ("role_grant_permission", ("r1", perm(READ, b"a", b"b"))),
    ("role_grant_permission", ("r1", perm(WRITE, b"a", b"b"))),
    ("role_grant_permission", ("nope", perm(READ, b"a"))),
    ("role_revoke_permission", ("r1", b"a", b"b")),
    ("role_revoke_permission", ("r1", b"zz", b"")),
    ("role_revoke_permission", ("nope", b"a", b"")),
    ("user_add", ("u1", "pw1", False)),
    ("user_add", ("u1", "pw1", False)),
    ("user_add", ("np", "", True)),
    ("user_grant_role", ("u1", "r2")),
    ("user_grant_role", ("u1", "r1")),
    ("user_grant_role", ("u1", "r1")),
    ("user_grant_role", ("u1", "nope")),
    ("user_grant_role", ("nobody", "r1")),
    ("user_revoke_role", ("u1", "r9")),
    ("user_revoke_role", ("nobody", "r1")),
    ("user_change_password", ("np", "newpw")),
    ("user_change_password", ("nobody", "x")),
    ("user_delete", ("nobody",)),
    ("auth_enable", ()),
    ("auth_enable", ()),
    ("user_delete", ("root",)),
    ("user_revoke_role", ("root", "root")),
    ("role_delete", ("root",)),
    ("role_delete", ("nope",)),
    ("role_delete", ("r1",)),
    ("user_add", ("u2", "pw2", False)),
    ("user_grant_role", ("u2", "r2")),
    ("user_delete", ("u1",)),
    ("auth_disable", ()),
    ("auth_disable", ()),
    ("user_revoke_role", ("root", "root")),
]


def apply_to_store(store: AuthStore, op: str, args: tuple) -> None:
    if op in ("user_add",):
        name, password, no_password = args
        store.user_add(name, b"" if no_password else hash_password(password, 4, RNG), no_password=no_password)
    elif op == "user_change_password":
        store.user_change_password(args[0], hash_password(args[1], 4, RNG))
    else:
        getattr(store, op)(*args)


def send_to_etcd(auth: rpc_pb2_grpc.AuthStub, op: str, args: tuple, md) -> None:
    if op == "role_add":
        auth.RoleAdd(pb.AuthRoleAddRequest(name=args[0]), metadata=md)
    elif op == "user_add":
        name, password, no_password = args
        req = pb.AuthUserAddRequest(
            name=name, password=password, options=auth_pb2.UserAddOptions(no_password=no_password)
        )
        auth.UserAdd(req, metadata=md)
    elif op == "auth_enable":
        auth.AuthEnable(pb.AuthEnableRequest(), metadata=md)
    elif op == "auth_disable":
        auth.AuthDisable(pb.AuthDisableRequest(), metadata=md)
    elif op == "user_grant_role":
        auth.UserGrantRole(pb.AuthUserGrantRoleRequest(user=args[0], role=args[1]), metadata=md)
    elif op == "user_revoke_role":
        auth.UserRevokeRole(pb.AuthUserRevokeRoleRequest(name=args[0], role=args[1]), metadata=md)
    elif op == "role_grant_permission":
        auth.RoleGrantPermission(pb.AuthRoleGrantPermissionRequest(name=args[0], perm=args[1]), metadata=md)
    elif op == "role_revoke_permission":
        req = pb.AuthRoleRevokePermissionRequest(role=args[0], key=args[1], range_end=args[2])
        auth.RoleRevokePermission(req, metadata=md)
    elif op == "user_change_password":
        auth.UserChangePassword(pb.AuthUserChangePasswordRequest(name=args[0], password=args[1]), metadata=md)
    elif op == "user_delete":
        auth.UserDelete(pb.AuthUserDeleteRequest(name=args[0]), metadata=md)
    elif op == "role_delete":
        auth.RoleDelete(pb.AuthRoleDeleteRequest(role=args[0]), metadata=md)
    else:
        raise AssertionError(op)


def outcome(call) -> tuple:
    try:
        call()
    except errors.EtcdError as exc:
        return (int(exc.code), exc.message)
    except grpc.RpcError as exc:
        return (exc.code().value[0], exc.details())
    return ("ok",)


def etcd_view(auth: rpc_pb2_grpc.AuthStub, md) -> dict:
    status = auth.AuthStatus(pb.AuthStatusRequest(), metadata=md)
    users = list(auth.UserList(pb.AuthUserListRequest(), metadata=md).users)
    roles = list(auth.RoleList(pb.AuthRoleListRequest(), metadata=md).roles)
    return {
        "enabled": status.enabled,
        "revision": status.authRevision,
        "users": {u: list(auth.UserGet(pb.AuthUserGetRequest(name=u), metadata=md).roles) for u in users},
        "roles": {
            r: [(p.permType, p.key, p.range_end) for p in auth.RoleGet(pb.AuthRoleGetRequest(role=r), metadata=md).perm]
            for r in roles
        },
    }


def store_view(store: AuthStore) -> dict:
    return {
        "enabled": store.enabled,
        "revision": store.revision,
        "users": {u: store.user_get(u) for u in store.user_list()},
        "roles": {r: [(p.permType, p.key, p.range_end) for p in store.role_get(r)] for r in store.role_list()},
    }


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    with etcd_process(tmp_path_factory.mktemp("etcd-auth"), extra_args=("--bcrypt-cost", "4")).start() as server:
        yield server


def test_store_matches_etcd_step_by_step(etcd):
    store = AuthStore()
    with grpc.insecure_channel(etcd.endpoint) as channel:
        auth = rpc_pb2_grpc.AuthStub(channel)

        def metadata():
            if not store.enabled:
                return ()
            token = auth.Authenticate(pb.AuthenticateRequest(name="root", password="rootpw")).token
            return (("token", token),)

        for step, (op, args) in enumerate(SCRIPT):
            md = metadata()
            want = outcome(lambda op=op, args=args, md=md: send_to_etcd(auth, op, args, md))
            got = outcome(lambda op=op, args=args: apply_to_store(store, op, args))
            assert got == want, (step, op, args)
            assert store_view(store) == etcd_view(auth, metadata()), (step, op, args)


GRANTS = [perm(READ, b"a"), perm(READWRITE, b"b", b"d"), perm(READ, b"x", b"\x00"), perm(WRITE, b"m", b"n")]
KEYS = [b"\x00", b"a", b"a\x00", b"b", b"c", b"d", b"m", b"x", b"y"]
ENDS = [b"", b"\x00", b"a\x00", b"b", b"c", b"d", b"e", b"n", b"z"]


def test_key_checks_match_etcd_for_top_level_requests(tmp_path):
    """Range, DeleteRange and Put (with and without prev_kv) over a grid of ranges: same allow/deny as etcd."""
    from etcdx.auth import checks

    store = AuthStore()
    store.user_add("root", hash_password("rootpw", 4, RNG), no_password=False)
    store.user_grant_role("root", "root")
    store.user_add("u", hash_password("upw", 4, RNG), no_password=False)
    store.role_add("ru")
    for g in GRANTS:
        store.role_grant_permission("ru", g)
    store.user_grant_role("u", "ru")
    store.auth_enable()
    info = store.auth_info_for("u")

    server = etcd_process(tmp_path, extra_args=("--bcrypt-cost", "4"))
    with server.start(), grpc.insecure_channel(server.endpoint) as channel:
        auth, kv = rpc_pb2_grpc.AuthStub(channel), rpc_pb2_grpc.KVStub(channel)
        auth.UserAdd(pb.AuthUserAddRequest(name="root", password="rootpw"))
        auth.UserGrantRole(pb.AuthUserGrantRoleRequest(user="root", role="root"))
        auth.UserAdd(pb.AuthUserAddRequest(name="u", password="upw"))
        auth.RoleAdd(pb.AuthRoleAddRequest(name="ru"))
        for g in GRANTS:
            auth.RoleGrantPermission(pb.AuthRoleGrantPermissionRequest(name="ru", perm=g))
        auth.UserGrantRole(pb.AuthUserGrantRoleRequest(user="u", role="ru"))
        auth.AuthEnable(pb.AuthEnableRequest())
        md = (("token", auth.Authenticate(pb.AuthenticateRequest(name="u", password="upw")).token),)

        cases = []
        for key in KEYS:
            for end in ENDS:
                rng = pb.RangeRequest(key=key, range_end=end)
                cases.append(
                    (
                        lambda r=rng: kv.Range(r, metadata=md),
                        lambda r=rng: checks.check_range(store, info, r),
                        ("range", key, end),
                    )
                )
                dr = pb.DeleteRangeRequest(key=key, range_end=end)
                cases.append(
                    (
                        lambda r=dr: kv.DeleteRange(r, metadata=md),
                        lambda r=dr: checks.check_delete_range(store, info, r),
                        ("delete", key, end),
                    )
                )
            for prev in (False, True):
                put = pb.PutRequest(key=key, value=b"v", prev_kv=prev)
                cases.append(
                    (
                        lambda r=put: kv.Put(r, metadata=md),
                        lambda r=put: checks.check_put(store, info, r, lambda lease: []),
                        ("put", key, prev),
                    )
                )
        results = [(name, outcome(ours), outcome(theirs)) for theirs, ours, name in cases]
    # A range_end below its key names no key; etcd's answer for it depends on the shape of its interval
    # tree (docs/differences.md); etcdx checks it as the single key. Those cases are left out here.
    inverted = [n for n, _, _ in results if n[0] != "put" and n[2] not in (b"", b"\x00") and n[2] <= n[1]]
    mismatches = [(n, ours, theirs) for n, ours, theirs in results if ours[0] != theirs[0] and n not in inverted]
    assert len(cases) == 2 * len(KEYS) * len(ENDS) + 2 * len(KEYS) and len(inverted) == 54
    assert sum(ours[0] == "ok" for _, ours, _ in results) > 40 and sum(ours[0] == 7 for _, ours, _ in results) > 40
    assert mismatches == []

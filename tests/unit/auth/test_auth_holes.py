"""One test per known way around etcd's RBAC that shows at the core: each is refused here.

Which of these etcd 3.5.1 itself lets through is recorded in etcdx.auth.policy.ETCD_3_5_1 and in
the docstring of each test ("etcd 3.5.1: ...").
"""

from __future__ import annotations

import random

import pytest
from authfixtures import READ, READWRITE, add_user, hashed, perm, store_with_root
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from etcdx import errors
from etcdx.auth import AuthInfo, checks, passwords
from etcdx.auth.jwt_token import JwtTokens
from etcdx.auth.simple_token import SimpleTokens, new_prefix
from etcdx.pb.authpb import auth_pb2
from etcdx.pb.etcdserverpb import rpc_pb2


def no_leases(lease_id: int):
    return []


@pytest.fixture
def tenant():
    store = store_with_root()
    info = add_user(store, "tenant", perm(READWRITE, b"/tenant/", b"/tenant0"))
    return store, info


def test_nested_txn_writing_outside_permissions(tenant):
    """CVE-2026-33343. etcd 3.5.1: lets it through (ops of a nested txn are not checked)."""
    store, info = tenant
    inner = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/secret"))])
    outer = rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/tenant/a")),
            rpc_pb2.RequestOp(request_txn=inner),
        ]
    )
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_txn(store, info, outer, no_leases)
    reader = rpc_pb2.TxnRequest(
        failure=[
            rpc_pb2.RequestOp(
                request_txn=rpc_pb2.TxnRequest(
                    compare=[rpc_pb2.Compare(key=b"/secret", result=rpc_pb2.Compare.EQUAL, value=b"guess")]
                )
            )
        ]
    )
    with pytest.raises(errors.ERR_PERMISSION_DENIED):  # a nested compare is a read (an oracle on the value)
        checks.check_txn(store, info, reader, no_leases)


def test_txn_put_prev_kv_and_lease_outside_permissions(tenant):
    """GHSA-x35m-3gp4-4fh5 (CVE-2026-44283). etcd 3.5.1: lets both through inside a txn."""
    store, info = tenant
    store.role_add("w-only")
    store.role_grant_permission("w-only", perm(1, b"/drop"))  # WRITE only
    store.user_grant_role("tenant", "w-only")
    info = store.auth_info_for("tenant")
    prev = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/drop", prev_kv=True))])
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_txn(store, info, prev, no_leases)
    leases = {5: [b"/root-owned"]}
    attach = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/tenant/x", lease=5))])
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_txn(store, info, attach, leases.__getitem__)


def test_watch_wider_than_read_permission():
    """GHSA-xg4h-6gfc-h4m8. etcd 3.5.1: a from-key watch is checked as the single key and leaks every later key."""
    store = store_with_root()
    info = add_user(store, "u", perm(READ, b"/app/config"))
    checks.check_watch(store, info, b"/app/config", b"")
    for key, end in ((b"/app/config", b"\x00"), (b"/app/config", b"/app/confih"), (b"/app/", b"/app0")):
        with pytest.raises(errors.ERR_PERMISSION_DENIED):
            checks.check_watch(store, info, key, end)


def test_lease_time_to_live_keys_and_revoke_over_unreadable_keys(tenant):
    """etcd 3.5.1: TimeToLive(keys=true) lists keys the caller cannot read; revoking an empty lease needs no user."""
    store, info = tenant
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_lease_time_to_live(store, info, [b"/tenant/a", b"/secret"], with_keys=True)
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_lease_revoke(store, info, [b"/secret"])
    with pytest.raises(errors.ERR_USER_EMPTY):
        checks.check_lease_revoke(store, None, [])


def test_permission_revoked_while_request_in_flight(tenant):
    """A request authorised at revision r and applied after a revoke at r+1 is refused. etcd 3.5.1: refuses too."""
    store, info = tenant
    put = rpc_pb2.PutRequest(key=b"/tenant/a")
    checks.check_put(store, info, put, no_leases)  # API layer: allowed, the proposal is stamped with info
    store.role_revoke_permission("tenant-role", b"/tenant/", b"/tenant0")  # committed before the put applies
    with pytest.raises(errors.ERR_AUTH_OLD_REVISION) as e:
        checks.check_put(store, info, put, no_leases)  # apply of the stamped put
    assert (e.value.code, e.value.message) == (3, "etcdserver: revision of auth store is old")
    with pytest.raises(errors.ERR_PERMISSION_DENIED):  # the client retries with a fresh token: still refused
        checks.check_put(store, store.auth_info_for("tenant"), put, no_leases)


@pytest.fixture(scope="module")
def es_keys():
    key = ec.generate_private_key(ec.SECP256R1())
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pub, priv


@pytest.mark.parametrize("kind", ["simple", "jwt"])
def test_token_of_deleted_user_and_of_user_whose_role_lost_permission(kind, es_keys):
    """Both refused. etcd 3.5.1: refuses too (simple: token dropped; jwt: old revision)."""
    tokens = (
        SimpleTokens(300) if kind == "simple" else JwtTokens("ES256", public_key=es_keys[0], private_key=es_keys[1])
    )
    store = store_with_root(tokens)
    add_user(store, "gone", perm(READWRITE, b"k"))
    add_user(store, "demoted", perm(READWRITE, b"k"))
    rng = random.Random(1)
    token_gone = tokens.assign("gone", store.revision, 0.0, simple_prefix=new_prefix(rng), index=1)
    token_demoted = tokens.assign("demoted", store.revision, 0.0, simple_prefix=new_prefix(rng), index=2)
    put = rpc_pb2.PutRequest(key=b"k")
    store.user_delete("gone")
    store.role_revoke_permission("demoted-role", b"k", b"")
    if kind == "simple":
        with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
            tokens.info(token_gone, 1.0, store.revision)
    else:
        with pytest.raises(errors.ERR_AUTH_OLD_REVISION):
            checks.check_put(store, tokens.info(token_gone, 1.0, store.revision), put, no_leases)
        with pytest.raises(errors.ERR_PERMISSION_DENIED):  # even stamped with the current revision
            checks.check_put(store, AuthInfo("gone", store.revision), put, no_leases)
    info = tokens.info(token_demoted, 1.0, store.revision)
    with pytest.raises((errors.ERR_PERMISSION_DENIED, errors.ERR_AUTH_OLD_REVISION)):
        checks.check_put(store, info, put, no_leases)


def test_no_plaintext_password_in_state_records_or_reprs():
    """TOB-ETCD-012 / CVE-2021-28235 at the core: only hashes enter the store; nothing keeps the plaintext."""
    secret = "correct horse battery staple"
    store = store_with_root()
    digest = passwords.hash_password(secret, 4, random.Random(5))
    writes = store.user_add("alice", digest, no_password=False)
    writes += store.user_change_password("alice", passwords.hash_password(secret + "2", 4, random.Random(6)))
    store.check_password("alice", secret + "2")
    blob = b"".join(k + (v or b"") for k, v in writes) + b"".join(k + v for k, v in store.dump())
    assert secret.encode() not in blob
    assert secret not in repr(vars(store))
    stored = auth_pb2.User.FromString(dict(store.dump())[b"user/alice"]).password
    assert passwords.password_matches(secret + "2", stored)


def test_bcrypt_cost_and_salt_come_from_the_caller():
    digest = passwords.hash_password("pw", 5, random.Random(9))
    assert digest.startswith(b"$2a$05$") and len(digest) == 60
    assert digest == passwords.hash_password("pw", 5, random.Random(9))
    assert digest != passwords.hash_password("pw", 5, random.Random(10))
    with pytest.raises(ValueError):
        passwords.hash_password("pw", 3, random.Random(9))
    assert hashed("x") != hashed("x")  # the shared fixture rng moves on: fresh salt each time

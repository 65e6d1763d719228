"""Auth at apply (etcdx/server/apply.py) on each backend: admin requests change the store and its "auth" table,
and every stamped request is checked against the auth state at apply, with the revision it was stamped with."""

from __future__ import annotations

import random

import pytest

from etcdx import errors
from etcdx.auth import passwords
from etcdx.auth.simple_token import SimpleTokens
from etcdx.pb.authpb import auth_pb2
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdxpb.internal_pb2 import Authenticate, AuthHeader, UserPassword
from etcdx.server.apply import Applier

ROOT = AuthHeader(username="root")


def _admin(store, **request):
    """An admin request stamped as root at the current auth revision; its answer must not be an error."""
    result = store.apply(auth=AuthHeader(username="root", revision=store.applier.auth.revision), **request)
    assert not isinstance(result, errors.EtcdError), result
    return result


@pytest.fixture
def secured(store):
    """root (role root) and alice (readwrite on [a, b)); auth enabled; a simple token provider."""
    store.applier = Applier(store.kv, store.lessor, store.alarms, tokens=SimpleTokens(), now=lambda: 100.0)
    hashed = passwords.hash_password("pw", passwords.MIN_COST, random.Random(1))
    store.apply(user_add=UserPassword(name="root", password_hash=hashed))
    store.apply(user_grant_role=pb.AuthUserGrantRoleRequest(user="root", role="root"))
    store.apply(user_add=UserPassword(name="alice", password_hash=hashed))
    store.apply(role_add=pb.AuthRoleAddRequest(name="ab"))
    perm = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"a", range_end=b"b")
    store.apply(role_grant_permission=pb.AuthRoleGrantPermissionRequest(name="ab", perm=perm))
    store.apply(user_grant_role=pb.AuthUserGrantRoleRequest(user="alice", role="ab"))
    assert not isinstance(store.apply(auth_enable=pb.AuthEnableRequest()), errors.EtcdError)
    return store


def _put_as(store, user: str, revision: int, key: bytes):
    return store.apply(auth=AuthHeader(username=user, revision=revision), put=pb.PutRequest(key=key, value=b"v"))


def test_a_permission_revoked_while_the_request_was_in_flight_is_not_used(secured):
    revision = secured.applier.auth.revision
    assert not isinstance(_put_as(secured, "alice", revision, b"a1"), errors.EtcdError)
    revoke = pb.AuthRoleRevokePermissionRequest(role="ab", key=b"a", range_end=b"b")
    _admin(secured, role_revoke_permission=revoke)
    stale = _put_as(secured, "alice", revision, b"a2")
    assert (stale.code, stale.message) == (errors.StatusCode.UNKNOWN, "auth: revision in header is old")
    assert isinstance(_put_as(secured, "alice", secured.applier.auth.revision, b"a2"), errors.ERR_PERMISSION_DENIED)
    assert secured.keys() == [b"a1"]


def test_stamped_requests_need_a_user_and_unstamped_ones_are_the_members_own(secured):
    anonymous = secured.apply(auth=AuthHeader(), put=pb.PutRequest(key=b"a3"))
    assert isinstance(anonymous, errors.ERR_USER_EMPTY)
    assert not isinstance(secured.put(b"z"), errors.EtcdError)  # no header: lease expiry and the like
    lease = secured.apply(auth=ROOT, lease_grant=pb.LeaseGrantRequest(ID=7, TTL=60))
    assert isinstance(lease, errors.ERR_USER_EMPTY)  # revision 0: a request made while nobody was logged in
    root_now = AuthHeader(username="root", revision=secured.applier.auth.revision)
    assert not isinstance(
        secured.apply(auth=root_now, lease_grant=pb.LeaseGrantRequest(ID=7, TTL=60)), errors.EtcdError
    )
    secured.apply(auth=root_now, put=pb.PutRequest(key=b"zz", lease=7))
    alice_now = AuthHeader(username="alice", revision=secured.applier.auth.revision)
    assert isinstance(
        secured.apply(auth=alice_now, lease_revoke=pb.LeaseRevokeRequest(ID=7)), errors.ERR_PERMISSION_DENIED
    )
    assert isinstance(
        secured.apply(auth=alice_now, compaction=pb.CompactionRequest(revision=1)), errors.ERR_PERMISSION_DENIED
    )
    nested = pb.TxnRequest(success=[pb.RequestOp(request_put=pb.PutRequest(key=b"zzz"))])
    outer = pb.TxnRequest(success=[pb.RequestOp(request_txn=nested)])
    assert isinstance(secured.apply(auth=alice_now, txn=outer), errors.ERR_PERMISSION_DENIED)
    live = secured.keys()
    assert b"zzz" not in live


def test_auth_state_survives_a_reopen_and_tokens_follow_it(secured):
    auth = secured.applier.auth
    revision = auth.revision
    answer = secured.apply(authenticate=Authenticate(name="alice", checked_revision=revision, simple_prefix="p" * 16))
    token = answer.token
    assert token == "p" * 16 + "." + str(secured.kv.consistent_index)
    assert secured.applier.tokens.info(token, 101.0, revision).username == "alice"
    stale = secured.apply(
        authenticate=Authenticate(name="alice", checked_revision=revision - 1, simple_prefix="q" * 16)
    )
    assert isinstance(stale, errors.ERR_AUTH_OLD_REVISION)
    _admin(secured, user_delete=pb.AuthUserDeleteRequest(name="alice"))
    with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
        secured.applier.tokens.info(token, 101.0, revision)
    dump = secured.applier.auth.dump()
    secured.reopen()
    assert secured.applier.auth.dump() == dump
    assert secured.applier.auth.enabled and secured.applier.auth.user_list() == ["root"]


def test_a_refused_admin_request_changes_nothing(secured):
    before = secured.applier.auth.dump()
    alice_now = AuthHeader(username="alice", revision=secured.applier.auth.revision)
    assert isinstance(
        secured.apply(auth=alice_now, role_add=pb.AuthRoleAddRequest(name="x")), errors.ERR_PERMISSION_DENIED
    )
    assert isinstance(
        _admin_error(secured, user_delete=pb.AuthUserDeleteRequest(name="root")), errors.ERR_INVALID_AUTH_MGMT
    )
    assert secured.applier.auth.dump() == before


def _admin_error(store, **request):
    return store.apply(auth=AuthHeader(username="root", revision=store.applier.auth.revision), **request)

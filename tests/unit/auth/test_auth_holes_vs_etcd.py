"""The holes etcdx closes, shown open on etcd 3.5.1 (the pinned oracle) and closed by the auth core.

Each case sends a request as a user with read-write on /tenant/ only (or with no user) to real etcd
3.5.1, where it succeeds, and runs the matching core check, which refuses it. This is the evidence
behind etcdx.auth.policy.ETCD_3_5_1 and docs/differences.md.
"""

from __future__ import annotations

import grpc
import pytest
from authfixtures import READWRITE, hashed, perm

from etcdx import errors
from etcdx.auth import AuthStore, checks
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdserverpb import rpc_pb2_grpc
from tests.support.procs import etcd_process

TENANT = perm(READWRITE, b"/tenant/", b"/tenant0")


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    server = etcd_process(tmp_path_factory.mktemp("etcd-holes"), extra_args=("--bcrypt-cost", "4"))
    with server.start(), grpc.insecure_channel(server.endpoint) as channel:
        auth = rpc_pb2_grpc.AuthStub(channel)
        auth.UserAdd(pb.AuthUserAddRequest(name="root", password="rootpw"))
        auth.UserGrantRole(pb.AuthUserGrantRoleRequest(user="root", role="root"))
        auth.UserAdd(pb.AuthUserAddRequest(name="tenant", password="pw"))
        auth.RoleAdd(pb.AuthRoleAddRequest(name="t"))
        auth.RoleGrantPermission(pb.AuthRoleGrantPermissionRequest(name="t", perm=TENANT))
        auth.UserGrantRole(pb.AuthUserGrantRoleRequest(user="tenant", role="t"))
        auth.AuthEnable(pb.AuthEnableRequest())
        root = (("token", auth.Authenticate(pb.AuthenticateRequest(name="root", password="rootpw")).token),)
        tenant = (("token", auth.Authenticate(pb.AuthenticateRequest(name="tenant", password="pw")).token),)
        yield channel, root, tenant


@pytest.fixture
def core():
    store = AuthStore()
    store.user_add("root", hashed("rootpw"), no_password=False)
    store.user_grant_role("root", "root")
    store.user_add("tenant", hashed("pw"), no_password=False)
    store.role_add("t")
    store.role_grant_permission("t", TENANT)
    store.user_grant_role("tenant", "t")
    store.auth_enable()
    return store, store.auth_info_for("tenant")


def test_nested_txn_put_outside_permissions(etcd, core):
    channel, root, tenant = etcd
    kv = rpc_pb2_grpc.KVStub(channel)
    inner = pb.TxnRequest(success=[pb.RequestOp(request_put=pb.PutRequest(key=b"/secret", value=b"owned"))])
    txn = pb.TxnRequest(success=[pb.RequestOp(request_txn=inner)])
    assert kv.Txn(txn, metadata=tenant).succeeded  # etcd 3.5.1 applies it
    assert kv.Range(pb.RangeRequest(key=b"/secret"), metadata=root).kvs[0].value == b"owned"
    store, info = core
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_txn(store, info, txn, lambda lease: [])


def test_txn_put_prev_kv_reads_a_write_only_key(etcd, core):
    """GHSA-x35m-3gp4-4fh5: with write but no read on /drop, a top-level put with prev_kv is refused by
    etcd 3.5.1, but the same put inside a txn returns the previous value."""
    channel, root, tenant = etcd
    kv, auth = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.AuthStub(channel)
    auth.RoleGrantPermission(pb.AuthRoleGrantPermissionRequest(name="t", perm=perm(1, b"/drop")), metadata=root)
    kv.Put(pb.PutRequest(key=b"/drop", value=b"hidden"), metadata=root)
    put = pb.PutRequest(key=b"/drop", value=b"x", prev_kv=True)
    with pytest.raises(grpc.RpcError) as e:
        kv.Put(put, metadata=tenant)
    assert e.value.details() == "etcdserver: permission denied"
    resp = kv.Txn(pb.TxnRequest(success=[pb.RequestOp(request_put=put)]), metadata=tenant)
    assert resp.responses[0].response_put.prev_kv.value == b"hidden"  # read through a write-only grant
    store, _ = core
    store.role_grant_permission("t", perm(1, b"/drop"))
    info = store.auth_info_for("tenant")
    store.check_write(info, (b"/drop", b"/drop\x00"))
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_put(store, info, put, lambda lease: [])
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_txn(store, info, pb.TxnRequest(success=[pb.RequestOp(request_put=put)]), lambda lease: [])


def test_lease_time_to_live_lists_keys_the_user_cannot_read(etcd, core):
    channel, root, tenant = etcd
    lease, kv = rpc_pb2_grpc.LeaseStub(channel), rpc_pb2_grpc.KVStub(channel)
    lease_id = lease.LeaseGrant(pb.LeaseGrantRequest(TTL=600), metadata=root).ID
    kv.Put(pb.PutRequest(key=b"/hidden", value=b"v", lease=lease_id), metadata=root)
    ttl = lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=lease_id, keys=True), metadata=tenant)
    assert list(ttl.keys) == [b"/hidden"]
    store, info = core
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_lease_time_to_live(store, info, [b"/hidden"], with_keys=True)


def test_calls_that_need_no_user_on_etcd(etcd, core):
    """GHSA-q8m4-xhhv-38mg: without any token etcd 3.5.1 serves these; the policy wants a user (or root)."""
    channel, root, _ = etcd
    anonymous = ()
    rpc_pb2_grpc.ClusterStub(channel).MemberList(pb.MemberListRequest(), metadata=anonymous)
    rpc_pb2_grpc.MaintenanceStub(channel).Alarm(pb.AlarmRequest(action=pb.AlarmRequest.GET), metadata=anonymous)
    rpc_pb2_grpc.MaintenanceStub(channel).Status(pb.StatusRequest(), metadata=anonymous)
    lease = rpc_pb2_grpc.LeaseStub(channel)
    granted = lease.LeaseGrant(pb.LeaseGrantRequest(TTL=600), metadata=anonymous).ID
    assert granted in [ls.ID for ls in lease.LeaseLeases(pb.LeaseLeasesRequest(), metadata=anonymous).leases]
    lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=granted), metadata=anonymous)
    kv = rpc_pb2_grpc.KVStub(channel)
    rev = kv.Put(pb.PutRequest(key=b"/c", value=b"v"), metadata=root).header.revision
    kv.Compact(pb.CompactionRequest(revision=rev), metadata=anonymous)
    store, _ = core
    for check in (store.check_authenticated, store.check_admin):
        with pytest.raises(errors.ERR_USER_EMPTY):
            check(None)
    with pytest.raises(errors.ERR_USER_EMPTY):
        checks.check_lease_revoke(store, None, [])


def test_from_key_watch_of_a_permitted_key(etcd, core):
    """GHSA-xg4h-6gfc-h4m8: etcd 3.5.1 creates a from-key watch for a user who may read only its start key."""
    channel, root, _ = etcd
    auth = rpc_pb2_grpc.AuthStub(channel)
    auth.UserAdd(pb.AuthUserAddRequest(name="one", password="pw"), metadata=root)
    auth.RoleAdd(pb.AuthRoleAddRequest(name="one-key"), metadata=root)
    auth.RoleGrantPermission(pb.AuthRoleGrantPermissionRequest(name="one-key", perm=perm(0, b"/app")), metadata=root)
    auth.UserGrantRole(pb.AuthUserGrantRoleRequest(user="one", role="one-key"), metadata=root)
    one = (("token", auth.Authenticate(pb.AuthenticateRequest(name="one", password="pw")).token),)
    create = pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"/app", range_end=b"\x00"))
    stream = rpc_pb2_grpc.WatchStub(channel).Watch(iter([create]), metadata=one, timeout=5)
    first = next(stream)
    stream.cancel()
    assert first.created and not first.canceled
    store, _ = core
    store.user_add("one", hashed("pw"), no_password=False)
    store.role_add("one-key")
    store.role_grant_permission("one-key", perm(0, b"/app"))
    store.user_grant_role("one", "one-key")
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_watch(store, store.auth_info_for("one"), b"/app", b"\x00")

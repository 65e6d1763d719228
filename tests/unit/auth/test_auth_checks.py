"""Per-request key checks: what Range, Put, DeleteRange, Txn, Watch and lease requests need."""

from __future__ import annotations

import pytest
from authfixtures import READ, READWRITE, WRITE, add_user, perm, store_with_root

from etcdx import errors
from etcdx.auth import checks, policy
from etcdx.pb.etcdserverpb import rpc_pb2


def no_leases(lease_id: int):
    return []


@pytest.fixture
def setup():
    store = store_with_root()
    alice = add_user(store, "alice", perm(READWRITE, b"a/", b"a0"), perm(READ, b"r/", b"r0"), perm(WRITE, b"w"))
    return store, alice


def test_range_needs_read_over_the_whole_range(setup):
    store, alice = setup
    checks.check_range(store, alice, rpc_pb2.RangeRequest(key=b"a/x"))
    checks.check_range(store, alice, rpc_pb2.RangeRequest(key=b"r/", range_end=b"r0"))
    for key, end in ((b"b", b""), (b"a/", b"a1"), (b"a/", b"\x00"), (b"w", b""), (b"\x00", b"\x00")):
        with pytest.raises(errors.ERR_PERMISSION_DENIED) as e:
            checks.check_range(store, alice, rpc_pb2.RangeRequest(key=key, range_end=end))
        assert (e.value.code, e.value.message) == (7, "etcdserver: permission denied")


def test_put_needs_write_and_prev_kv_needs_read(setup):
    store, alice = setup
    checks.check_put(store, alice, rpc_pb2.PutRequest(key=b"w", value=b"v"), no_leases)
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_put(store, alice, rpc_pb2.PutRequest(key=b"w", prev_kv=True), no_leases)
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_put(store, alice, rpc_pb2.PutRequest(key=b"r/x"), no_leases)


def test_put_with_lease_needs_write_on_every_key_of_the_lease(setup):
    store, alice = setup
    attached = {7: [b"a/1", b"secret"], 8: [b"a/2"]}
    checks.check_put(store, alice, rpc_pb2.PutRequest(key=b"a/3", lease=8), attached.__getitem__)
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_put(store, alice, rpc_pb2.PutRequest(key=b"a/3", lease=7), attached.__getitem__)


def test_delete_range_needs_write_and_prev_kv_needs_read(setup):
    store, alice = setup
    checks.check_delete_range(store, alice, rpc_pb2.DeleteRangeRequest(key=b"a/", range_end=b"a0", prev_kv=True))
    checks.check_delete_range(store, alice, rpc_pb2.DeleteRangeRequest(key=b"w"))
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_delete_range(store, alice, rpc_pb2.DeleteRangeRequest(key=b"w", prev_kv=True))
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_delete_range(store, alice, rpc_pb2.DeleteRangeRequest(key=b"r/x"))


def test_txn_checks_compares_and_both_branches(setup):
    store, alice = setup
    ok = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a/1"))
    bad = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"zz"))
    checks.check_txn(store, alice, rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"r/1")], success=[ok]), no_leases)
    for txn in (
        rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"zz")], success=[ok]),
        rpc_pb2.TxnRequest(success=[ok], failure=[bad]),  # the branch not taken is checked too
        rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"w"))]),
    ):
        with pytest.raises(errors.ERR_PERMISSION_DENIED):
            checks.check_txn(store, alice, txn, no_leases)
    with pytest.raises(errors.ERR_USER_EMPTY):
        checks.check_txn(store, None, rpc_pb2.TxnRequest(), no_leases)  # even an empty txn needs a user


def test_deeply_nested_txn_is_refused_not_a_crash(setup):
    store, alice = setup
    txn = rpc_pb2.TxnRequest()
    inner = txn
    for _ in range(45):  # as deep as protobuf lets a request arrive (its decoder stops at 100 levels)
        inner.success.add(request_put=rpc_pb2.PutRequest(key=b"a/ok"))
        inner = inner.failure.add().request_txn
    inner.failure.add(request_put=rpc_pb2.PutRequest(key=b"secret"))
    assert len(rpc_pb2.TxnRequest.FromString(txn.SerializeToString()).failure) == 1
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_txn(store, alice, txn, no_leases)


def test_watch_needs_read_over_the_whole_watched_range(setup):
    store, alice = setup
    checks.check_watch(store, alice, b"r/", b"r0")
    checks.check_watch(store, alice, b"a/k", b"")
    for key, end in ((b"r/", b"\x00"), (b"r/", b"s"), (b"\x00", b"\x00"), (b"w", b"")):
        with pytest.raises(errors.ERR_PERMISSION_DENIED):
            checks.check_watch(store, alice, key, end)


def test_lease_operations(setup):
    store, alice = setup
    checks.check_lease_revoke(store, alice, [b"a/1", b"w"])
    checks.check_lease_time_to_live(store, alice, [b"secret"], with_keys=False)
    checks.check_lease_time_to_live(store, alice, [b"a/1", b"r/1"], with_keys=True)
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_lease_revoke(store, alice, [b"a/1", b"r/1"])
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_lease_keepalive(store, alice, [b"secret"])
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        checks.check_lease_time_to_live(store, alice, [b"w"], with_keys=True)
    for call in (
        lambda: checks.check_lease_revoke(store, None, []),
        lambda: checks.check_lease_time_to_live(store, None, [], with_keys=False),
    ):
        with pytest.raises(errors.ERR_USER_EMPTY):
            call()


def test_root_passes_every_key_check(setup):
    store, _ = setup
    root = store.auth_info_for("root")
    checks.check_watch(store, root, b"\x00", b"\x00")
    checks.check_lease_revoke(store, root, [b"anything"])
    deep = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"x", prev_kv=True))])
    checks.check_txn(store, root, deep, no_leases)


def test_nothing_is_checked_while_auth_is_disabled(setup):
    store, _ = setup
    store.auth_disable()
    checks.check_range(store, None, rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00"))
    checks.check_txn(store, None, rpc_pb2.TxnRequest(), no_leases)
    checks.check_lease_revoke(store, None, [b"x"])


def test_policy_names_every_method_once_and_maintenance_errors_are_unmapped():
    assert policy.METHODS["/etcdserverpb.KV/Compact"] is policy.Access.ADMIN
    assert policy.alarm_access(0) is policy.Access.AUTHENTICATED and policy.alarm_access(1) is policy.Access.ADMIN
    assert set(policy.ETCD_3_5_1) <= set(policy.METHODS)
    exc = policy.unmapped(errors.ERR_PERMISSION_DENIED())
    assert (exc.code, exc.message) == (2, "auth: permission denied")
    exc = policy.unmapped(errors.ERR_USER_EMPTY())
    assert (exc.code, exc.message) == (2, "auth: user name is empty")


def test_policy_covers_every_method_the_member_serves():
    from etcdx.pb.etcdserverpb import rpc_pb2 as rpc
    from etcdx.pb.v3electionpb import v3election_pb2
    from etcdx.pb.v3lockpb import v3lock_pb2

    served = {
        f"/{service.full_name}/{method.name}"
        for module in (rpc, v3lock_pb2, v3election_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert len(served) > 40
    assert served - set(policy.METHODS) == set()

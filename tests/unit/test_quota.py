"""The quota's cost rule (etcd 3.5's quota.go, extended to nested txns) and when it refuses a write."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcdx import errors
from etcdx.mvcc.alarms import Alarms
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.server.quota import LEASE_GRANT_COST, Quota, QuotaExceeded, put_cost, txn_cost

Op = pb.RequestOp


def put(key: bytes, value: bytes = b"") -> Op:
    return Op(request_put=pb.PutRequest(key=key, value=value))


def nested(success=(), failure=()) -> Op:
    return Op(request_txn=pb.TxnRequest(success=list(success), failure=list(failure)))


def test_a_put_costs_its_key_its_value_and_256_bytes():
    assert put_cost(pb.PutRequest(key=b"abc", value=b"x" * 1000)) == 256 + 3 + 1000
    assert put_cost(pb.PutRequest()) == 256  # even an empty put adds a revision
    assert LEASE_GRANT_COST == 64


def test_a_txn_costs_its_costlier_branch():
    txn = pb.TxnRequest(success=[put(b"a", b"1"), put(b"b", b"2")], failure=[put(b"long", b"x" * 10)])
    assert txn_cost(txn) == max(2 * (256 + 2), 256 + 14)
    reads_and_deletes = pb.TxnRequest(
        success=[Op(request_range=pb.RangeRequest(key=b"a"))],
        failure=[Op(request_delete_range=pb.DeleteRangeRequest(key=b"a"))],
    )
    assert txn_cost(reads_and_deletes) == 0


def test_a_nested_txn_adds_its_own_costlier_branch_where_etcd_counts_nothing():
    inner = nested(success=[put(b"s")], failure=[put(b"f", b"12345")])
    assert txn_cost(pb.TxnRequest(success=[put(b"top"), inner])) == (256 + 3) + (256 + 6)
    deep = nested(success=[nested(failure=[nested(success=[put(b"deep")])])])
    assert txn_cost(pb.TxnRequest(failure=[deep])) == 256 + 4
    assert txn_cost(pb.TxnRequest(success=[nested(success=[nested()])])) == 0


def _txns(depth: int):
    leaf = st.sampled_from(["put", "range", "delete"]).map(
        lambda kind: {
            "put": put(b"k"),
            "range": Op(request_range=pb.RangeRequest(key=b"k")),
            "delete": Op(request_delete_range=pb.DeleteRangeRequest(key=b"k")),
        }[kind]
    )
    ops = leaf if depth == 0 else st.one_of(leaf, _txns(depth - 1).map(lambda t: Op(request_txn=t)))
    return st.builds(
        lambda s, f: pb.TxnRequest(success=s, failure=f), st.lists(ops, max_size=3), st.lists(ops, max_size=3)
    )


def _has_put(txn: pb.TxnRequest) -> bool:
    for op in (*txn.success, *txn.failure):
        kind = op.WhichOneof("request")
        if kind == "request_put" or (kind == "request_txn" and _has_put(op.request_txn)):
            return True
    return False


@given(_txns(4))
def test_a_txn_costs_something_exactly_when_a_put_at_any_depth_may_run(txn):
    assert (txn_cost(txn) > 0) == _has_put(txn)


def test_the_quota_refuses_a_write_that_would_reach_it_and_raises_the_alarm_first():
    quota = Quota(1000, Alarms())
    quota.check(299, backend_bytes=700)
    with pytest.raises(QuotaExceeded):
        quota.check(300, backend_bytes=700)  # the caller raises the NOSPACE alarm before refusing
    quota.check(0, backend_bytes=5000)  # deletes, compactions, read-only txns cost nothing: never refused
    Quota(0, Alarms()).check(10**12, backend_bytes=10**12)  # 0: no quota


def test_while_nospace_is_on_every_write_that_costs_anything_is_refused():
    alarms = Alarms()
    alarms.activate(1, pb.NOSPACE)
    quota = Quota(0, alarms)
    with pytest.raises(errors.ERR_NO_SPACE) as refused:
        quota.check(txn_cost(pb.TxnRequest(success=[nested(success=[put(b"")])])), backend_bytes=0)
    assert not isinstance(refused.value, QuotaExceeded)  # the alarm is on already: nothing to raise
    assert (refused.value.code, refused.value.message) == (
        errors.StatusCode.RESOURCE_EXHAUSTED,
        "etcdserver: mvcc: database space exceeded",
    )
    quota.check(0, backend_bytes=0)
    alarms.deactivate(1, pb.NOSPACE)
    quota.check(LEASE_GRANT_COST, backend_bytes=0)

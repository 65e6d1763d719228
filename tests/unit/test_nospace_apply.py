"""While the NOSPACE alarm is on, apply refuses every entry that may add data (etcd's capped applier),
so that a write proposed before the alarm applied cannot land after it; everything else still applies."""

from __future__ import annotations

from etcdx import errors
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from tests.support.store import Store

Op = pb.RequestOp
NOSPACE_ON = pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=1, alarm=pb.NOSPACE)
NOSPACE_OFF = pb.AlarmRequest(action=pb.AlarmRequest.DEACTIVATE, memberID=1, alarm=pb.NOSPACE)


def apply(store: Store, **request):
    return store.apply(**request)


def nested_put() -> pb.TxnRequest:
    inner = pb.TxnRequest(success=[Op(request_put=pb.PutRequest(key=b"deep", value=b"v"))])
    return pb.TxnRequest(success=[Op(request_txn=pb.TxnRequest(success=[Op(request_txn=inner)]))])


def test_entries_that_may_add_data_are_refused_at_apply_while_nospace(store):
    apply(store, put=pb.PutRequest(key=b"a", value=b"1"))
    apply(store, alarm=NOSPACE_ON)
    revision = store.kv.current_revision
    refused = [
        {"put": pb.PutRequest(key=b"b", value=b"2")},
        {"txn": nested_put()},
        {"txn": pb.TxnRequest(failure=[Op(request_put=pb.PutRequest(key=b"b"))])},
        {"lease_grant": pb.LeaseGrantRequest(ID=5, TTL=60)},
    ]
    for request in refused:
        index = store.kv.consistent_index + 1
        result = apply(store, **request)
        assert isinstance(result, errors.ERR_NO_SPACE), request
        assert store.kv.consistent_index == index  # a refused entry is applied as a refusal, never skipped
    assert store.kv.current_revision == revision
    assert not store.kv.lessor.exists(5)

    delete_txn = pb.TxnRequest(success=[Op(request_delete_range=pb.DeleteRangeRequest(key=b"a"))])
    assert apply(store, txn=delete_txn).succeeded
    assert apply(store, compaction=pb.CompactionRequest(revision=store.kv.current_revision)) is not None
    apply(store, alarm=NOSPACE_OFF)
    assert isinstance(apply(store, txn=nested_put()), pb.TxnResponse)
    assert store.kv.range(pb.RangeRequest(key=b"deep")).kvs[0].value == b"v"

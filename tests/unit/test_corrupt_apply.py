"""While a CORRUPT alarm is on, apply refuses every write etcd's corrupt applier refuses (Put, DeleteRange, Txn,
Compaction, LeaseGrant, LeaseRevoke) with "etcdserver: corrupt cluster", before auth and the NOSPACE cap;
alarms still apply, so the alarm can be disarmed, and then writes apply again."""

from __future__ import annotations

from etcdx import errors
from etcdx.pb.etcdserverpb import rpc_pb2 as pb

CORRUPT_ON = pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=3, alarm=pb.CORRUPT)
CORRUPT_OFF = pb.AlarmRequest(action=pb.AlarmRequest.DEACTIVATE, memberID=3, alarm=pb.CORRUPT)
NOSPACE_ON = pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=1, alarm=pb.NOSPACE)


def test_writes_are_refused_while_corrupt_until_the_alarm_is_disarmed(store):
    store.put(b"a", b"1")
    store.apply(lease_grant=pb.LeaseGrantRequest(ID=5, TTL=60))
    store.apply(alarm=NOSPACE_ON)
    store.apply(alarm=CORRUPT_ON)
    revision = store.kv.current_revision
    refused = [
        {"put": pb.PutRequest(key=b"b", value=b"2")},
        {"delete_range": pb.DeleteRangeRequest(key=b"a")},
        {"txn": pb.TxnRequest(success=[pb.RequestOp(request_range=pb.RangeRequest(key=b"a"))])},
        {"compaction": pb.CompactionRequest(revision=1)},
        {"lease_grant": pb.LeaseGrantRequest(ID=6, TTL=60)},
        {"lease_revoke": pb.LeaseRevokeRequest(ID=5)},
    ]
    for request in refused:
        result = store.apply(**request)
        assert isinstance(result, errors.EtcdError), request
        assert (result.code, result.message) == (errors.StatusCode.DATA_LOSS, "etcdserver: corrupt cluster")
    assert store.kv.current_revision == revision and store.lessor.exists(5)
    assert [kv.value for kv in store.range(b"a").kvs] == [b"1"]  # reads are served outside the applier
    store.apply(alarm=CORRUPT_OFF)
    assert not isinstance(store.apply(delete_range=pb.DeleteRangeRequest(key=b"a")), errors.EtcdError)

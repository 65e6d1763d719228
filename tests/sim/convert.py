"""Between lincheck's history records and the protobuf messages the real applier takes and gives.

A client of the simulation speaks lincheck's request types (tests/support/lincheck/history.py); the member
shell turns them into etcd's RangeRequest or an InternalRequest for the log, and turns the applier's protobuf
answer (or its EtcdError) back into lincheck's response types, field for field.
"""

from __future__ import annotations

from etcdx import errors
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.pb.mvccpb import kv_pb2
from tests.support.lincheck import history as h

_TARGETS = {
    "value": rpc_pb2.Compare.VALUE,
    "version": rpc_pb2.Compare.VERSION,
    "create": rpc_pb2.Compare.CREATE,
    "mod": rpc_pb2.Compare.MOD,
    "lease": rpc_pb2.Compare.LEASE,
}
_OPS = {
    "=": rpc_pb2.Compare.EQUAL,
    "!=": rpc_pb2.Compare.NOT_EQUAL,
    ">": rpc_pb2.Compare.GREATER,
    "<": rpc_pb2.Compare.LESS,
}
_TARGET_FIELD = {
    "value": "value",
    "version": "version",
    "create": "create_revision",
    "mod": "mod_revision",
    "lease": "lease",
}


def range_request(req: h.Range) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(key=req.key, range_end=req.range_end, serializable=req.serializable)


def _put(req: h.Put) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=req.key, value=req.value, lease=req.lease, prev_kv=req.prev_kv)


def _delete(req: h.DeleteRange) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(key=req.key, range_end=req.range_end, prev_kv=req.prev_kv)


def _request_op(req: h.Put | h.DeleteRange | h.Range) -> rpc_pb2.RequestOp:
    if isinstance(req, h.Put):
        return rpc_pb2.RequestOp(request_put=_put(req))
    if isinstance(req, h.DeleteRange):
        return rpc_pb2.RequestOp(request_delete_range=_delete(req))
    return rpc_pb2.RequestOp(request_range=range_request(req))


def _compare(c: h.Compare) -> rpc_pb2.Compare:
    cmp = rpc_pb2.Compare(key=c.key, target=_TARGETS[c.target], result=_OPS[c.op])
    setattr(cmp, _TARGET_FIELD[c.target], c.operand)
    return cmp


def internal_request(request_id: int, req: h.Request) -> InternalRequest:
    """The log entry's request for a write (anything but a Range), tagged with the waiter's request id."""
    if isinstance(req, h.Put):
        return InternalRequest(id=request_id, put=_put(req))
    if isinstance(req, h.DeleteRange):
        return InternalRequest(id=request_id, delete_range=_delete(req))
    if isinstance(req, h.Txn):
        txn = rpc_pb2.TxnRequest(
            compare=[_compare(c) for c in req.compares],
            success=[_request_op(op) for op in req.success],
            failure=[_request_op(op) for op in req.failure],
        )
        return InternalRequest(id=request_id, txn=txn)
    if isinstance(req, h.LeaseGrant):
        return InternalRequest(id=request_id, lease_grant=rpc_pb2.LeaseGrantRequest(ID=req.id, TTL=3600))
    if isinstance(req, h.LeaseRevoke):
        return InternalRequest(id=request_id, lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=req.id))
    raise TypeError(f"not a write: {req!r}")


def _kv(kv: kv_pb2.KeyValue) -> h.KeyValue:
    return h.KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


def _range_response(resp: rpc_pb2.RangeResponse, revision: int) -> h.RangeResponse:
    return h.RangeResponse(revision, tuple(_kv(kv) for kv in resp.kvs))


def response(req: h.Request, resp: object) -> h.Response:
    """lincheck's record of the applier's answer to ``req`` (a protobuf response or an EtcdError)."""
    if isinstance(resp, errors.EtcdError):
        return h.ErrorResponse(resp.message)
    revision = resp.header.revision
    if isinstance(req, h.Range):
        return _range_response(resp, revision)
    if isinstance(req, h.Put):
        return h.PutResponse(revision, _kv(resp.prev_kv) if resp.HasField("prev_kv") else None)
    if isinstance(req, h.DeleteRange):
        return h.DeleteRangeResponse(revision, resp.deleted, tuple(_kv(kv) for kv in resp.prev_kvs))
    if isinstance(req, h.Txn):
        inner = []
        for op in resp.responses:
            kind = op.WhichOneof("response")
            if kind == "response_put":
                p = op.response_put
                inner.append(h.PutResponse(revision, _kv(p.prev_kv) if p.HasField("prev_kv") else None))
            elif kind == "response_delete_range":
                d = op.response_delete_range
                inner.append(h.DeleteRangeResponse(revision, d.deleted, tuple(_kv(kv) for kv in d.prev_kvs)))
            else:
                inner.append(_range_response(op.response_range, revision))
        return h.TxnResponse(revision, resp.succeeded, tuple(inner))
    if isinstance(req, h.LeaseGrant):
        return h.LeaseGrantResponse(revision, resp.ID)
    if isinstance(req, h.LeaseRevoke):
        return h.LeaseRevokeResponse(revision)
    raise TypeError(f"not a request: {req!r}")

"""The backend quota (--quota-backend-bytes) and the NOSPACE alarm it raises, as etcd 3.5 applies them.

A write whose estimated cost would take the backend to the quota is refused with "database space
exceeded" and raises the NOSPACE alarm (the server proposes it through the log and waits for it to
apply); while that alarm is active every write that adds data is refused, until an operator disarms it
(etcdctl alarm disarm). What adds data, and its cost, follow etcd's quota.go: a put costs its key, its
value and 256 bytes, a txn its costlier branch, a lease grant 64 bytes; deletes, compactions and reads
cost nothing. Two differences from etcd 3.5.1: a txn nested in a txn costs its own costlier branch,
where etcd counts it as nothing (with the alarm on and the backend under the quota, etcd applies nested
puts); and a write that costs nothing is never refused, where etcd refuses every txn, even a read-only
one, while the backend is at the quota. Pure.
"""

from __future__ import annotations

from etcdx import errors
from etcdx.mvcc.alarms import Alarms
from etcdx.pb.etcdserverpb import rpc_pb2

KV_OVERHEAD = 256
LEASE_GRANT_COST = 64


def put_cost(put: rpc_pb2.PutRequest) -> int:
    return kv_cost(put.key, put.value)


def kv_cost(key: bytes, value: bytes) -> int:
    """What a put of ``key`` and ``value`` costs (for a caller that holds them already)."""
    return KV_OVERHEAD + len(key) + len(value)


def txn_cost(txn: rpc_pb2.TxnRequest) -> int:
    """The costlier branch (only one of them runs): the sum of its puts' costs and of its nested txns'.
    Non-zero exactly when some put, at any depth, may run."""
    return max(_branch_cost(txn.success), _branch_cost(txn.failure))


def _branch_cost(ops) -> int:
    cost = 0
    for op in ops:
        kind = op.WhichOneof("request")
        if kind == "request_put":
            cost += put_cost(op.request_put)
        elif kind == "request_txn":
            cost += txn_cost(op.request_txn)
    return cost


class QuotaExceeded(errors.ERR_NO_SPACE):
    """This write would take the backend past the quota and no NOSPACE alarm is active yet: the caller
    raises the alarm (through the log, as etcd does) before refusing the write."""


class Quota:
    def __init__(self, quota_bytes: int, alarms: Alarms) -> None:
        self.quota_bytes = quota_bytes  # 0 = no quota
        self.alarms = alarms

    def check(self, cost: int, backend_bytes: int) -> None:
        """Raises ERR_NO_SPACE for a write of ``cost`` bytes that an active NOSPACE alarm forbids, or
        QuotaExceeded (an ERR_NO_SPACE) when the quota itself forbids it."""
        if cost == 0:
            return
        if self.alarms.has(rpc_pb2.NOSPACE):
            raise errors.ERR_NO_SPACE
        if self.quota_bytes and backend_bytes + cost >= self.quota_bytes:
            raise QuotaExceeded

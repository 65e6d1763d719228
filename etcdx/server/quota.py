"""The backend quota (--quota-backend-bytes) and the NOSPACE alarm it raises, as etcd 3.5 applies them.

A write whose estimated cost would take the backend to the quota is refused with "database space
exceeded" and raises the NOSPACE alarm; while that alarm is active every write that adds data
(Put, Txn with puts) is refused, until an operator disarms it (etcdctl alarm disarm). Pure.
"""

from __future__ import annotations

from etcdx import errors
from etcdx.pb.etcdserverpb import rpc_pb2

KV_OVERHEAD = 256


def put_cost(put: rpc_pb2.PutRequest) -> int:
    return KV_OVERHEAD + len(put.key) + len(put.value)


def txn_cost(txn: rpc_pb2.TxnRequest) -> int:
    """The costlier branch: only one of them runs."""

    def branch(ops) -> int:
        return sum(put_cost(op.request_put) for op in ops if op.WhichOneof("request") == "request_put")

    return max(branch(txn.success), branch(txn.failure))


class Alarms:
    """Active alarms as (member id, alarm type) pairs."""

    def __init__(self) -> None:
        self.active: set[tuple[int, int]] = set()

    def has(self, alarm: int) -> bool:
        return any(kind == alarm for _, kind in self.active)

    def activate(self, member_id: int, alarm: int) -> None:
        self.active.add((member_id, alarm))

    def deactivate(self, member_id: int, alarm: int) -> bool:
        try:
            self.active.remove((member_id, alarm))
        except KeyError:
            return False
        return True

    def list(self, member_id: int = 0, alarm: int = rpc_pb2.NONE) -> list[tuple[int, int]]:
        return sorted(
            (m, a)
            for m, a in self.active
            if (not member_id or m == member_id) and (alarm == rpc_pb2.NONE or a == alarm)
        )


class Quota:
    def __init__(self, quota_bytes: int, member_id: int, alarms: Alarms) -> None:
        self.quota_bytes = quota_bytes  # 0 = no quota
        self.member_id = member_id
        self.alarms = alarms

    def check(self, cost: int, backend_bytes: int) -> None:
        """Raises ERR_NO_SPACE for a write of ``cost`` bytes that the quota (or an alarm) forbids."""
        if cost == 0:
            return
        if self.alarms.has(rpc_pb2.NOSPACE):
            raise errors.ERR_NO_SPACE
        if self.quota_bytes and backend_bytes + cost >= self.quota_bytes:
            self.alarms.activate(self.member_id, rpc_pb2.NOSPACE)
            raise errors.ERR_NO_SPACE

"""The active alarms (NOSPACE, CORRUPT): part of the applied state, set and cleared only by applying
AlarmRequests from the log and persisted in the backend's ``alarm`` sub-database, as etcd keeps them.
Pure: the set of (member id, alarm type) pairs."""

from __future__ import annotations

from etcdx.pb.etcdserverpb import rpc_pb2


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

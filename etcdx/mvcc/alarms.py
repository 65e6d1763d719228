"""The active alarms (NOSPACE, CORRUPT): part of the applied state, set and cleared only by applying
AlarmRequests from the log and persisted in the backend's ``alarm`` sub-database, as etcd keeps them.
Pure: the set of (member id, alarm type) pairs.

Invariant: once ``check_alarm_request`` guards every ACTIVATE, only the known types (NOSPACE, CORRUPT) are
ever activated. A data dir written before that guard may still hold another type: it is listed by its
number (``alarm_name``), counts as active, and DEACTIVATE of that type clears it.
"""

from __future__ import annotations

from etcdx.errors import EtcdError, StatusCode
from etcdx.pb.etcdserverpb import rpc_pb2

AlarmRequest = rpc_pb2.AlarmRequest
KNOWN_ALARMS = frozenset({rpc_pb2.NOSPACE, rpc_pb2.CORRUPT})
KNOWN_ACTIONS = frozenset({AlarmRequest.GET, AlarmRequest.ACTIVATE, AlarmRequest.DEACTIVATE})


def check_alarm_request(request: rpc_pb2.AlarmRequest) -> None:
    """Raises InvalidArgument for a request etcd 3.5.1 cannot answer (it panics on an unknown action and
    on ACTIVATE of an unknown type); etcd has no error of its own for these. ACTIVATE of NONE and
    GET or DEACTIVATE of an unknown type are valid: etcd answers them with an empty list, and so does etcdx.
    """
    if request.action not in KNOWN_ACTIONS:
        raise EtcdError(StatusCode.INVALID_ARGUMENT, f"etcdserver: unknown alarm action {request.action}")
    if request.action == AlarmRequest.ACTIVATE and request.alarm not in KNOWN_ALARMS | {rpc_pb2.NONE}:
        raise EtcdError(StatusCode.INVALID_ARGUMENT, f"etcdserver: unknown alarm type {request.alarm}")


def alarm_name(alarm: int) -> str:
    """The type's name as etcd prints it (Go's String() of the enum: the number for an unknown value)."""
    try:
        return rpc_pb2.AlarmType.Name(alarm)
    except ValueError:
        return str(alarm)


class Alarms:
    """Active alarms as (member id, alarm type) pairs."""

    def __init__(self) -> None:
        self.active: set[tuple[int, int]] = set()

    def replace(self, pairs: list[tuple[int, int]]) -> None:
        """Makes ``pairs`` (member id, alarm type) the active alarms, as a restart or a restored snapshot reads them."""
        self.active = set(pairs)

    def has(self, alarm: int) -> bool:
        """Whether any member has ``alarm`` active (checked on every write: the usual empty set costs one test)."""
        return bool(self.active) and any(kind == alarm for _, kind in self.active)

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

"""The applier (etcd's applierV3): turns each committed log entry into its effect on the replicated state and
its answer. Pure: no trio, no I/O of its own; it runs in the server and, without an event loop, in the
seeded simulation.

It decodes an entry's InternalRequest, dispatches it by kind to the KV store (put, delete_range, txn,
compaction), the lessor (lease_grant, lease_revoke) and the alarms (alarm), refuses what may add data while
the NOSPACE alarm is on, and turns whatever the entry cannot do into that entry's answer. Conf changes and
auth will be dispatched here too.

Determinism (every member applies the same entries the same way): the answer and the effect of an entry
depend only on its bytes and the applied state. Only a failing backend (``store.storage_errors``) escapes
``apply``: the member cannot go on without it (the WAL replays the entry after a restart).
Call ``apply`` inside ``store.apply_batch()``; ``store.commit()`` makes the batch durable.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from etcdx import errors
from etcdx.lease.lessor import Lessor
from etcdx.mvcc import rows
from etcdx.mvcc.alarms import Alarms, check_alarm_request
from etcdx.mvcc.kvstore import KVStore
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest

Result = Message | errors.EtcdError | None


class ApplyFailed(errors.EtcdError):
    """An entry that apply could not apply although no check refused it: the entry's answer, never a reason
    to stop. It depends only on the entry's bytes and the applied state, so every member that applies the
    entry gets the same error. ``cause`` is the exception (for the one log line the server writes)."""

    code = errors.StatusCode.INTERNAL

    def __init__(self, cause: BaseException) -> None:
        super().__init__(message=f"etcdserver: request cannot be applied ({type(cause).__name__})")
        self.cause = cause


_ADDS_DATA = frozenset(("put", "txn", "lease_grant"))


def _adds_data(request: InternalRequest, kind: str) -> bool:
    """Whether ``request`` (of a kind in _ADDS_DATA) may add data: what apply refuses while the NOSPACE
    alarm is on (etcd's capped applier), so that a write proposed before the alarm applied cannot land
    after it. A put, a lease grant, or a txn with a put at any depth (etcd looks at top-level puts only)."""
    return kind != "txn" or _txn_may_put(request.txn)


def _txn_may_put(txn: rpc_pb2.TxnRequest) -> bool:
    for op in (*txn.success, *txn.failure):
        kind = op.WhichOneof("request")
        if kind == "request_put" or (kind == "request_txn" and _txn_may_put(op.request_txn)):
            return True
    return False


class Applier:
    """Applies committed entries to ``store``, ``lessor`` (the one the store attaches keys to) and ``alarms``.

    Construction makes ``alarms`` hold exactly the alarms the store's backend holds (after a restart, or on a
    store opened on a restored snapshot)."""

    def __init__(self, store: KVStore, lessor: Lessor, alarms: Alarms) -> None:
        self.store = store
        self.lessor = lessor
        self.alarms = alarms
        # Applies a V2Request at its log index (the server's v2 store, with --enable-v2); None: v2 entries are no-ops.
        self.v2_applier: Callable[[Message, int], object] | None = None
        with store.backend.begin_read() as view:
            alarms.replace(rows.alarms(view))

    def apply(self, index: int, data: bytes) -> Result:
        """``apply_request`` for an entry as the log holds it (a serialized InternalRequest). Bytes that do not
        parse are that entry's ApplyFailed answer (the same bytes fail the same way on every member)."""
        if not self.store.advance_to(index):
            return None
        try:
            request = InternalRequest.FromString(data)
        except Exception as exc:  # DecodeError, or whatever else the decoder raises for these bytes
            return ApplyFailed(exc)
        return self._apply_advanced(request)

    def apply_request(self, index: int, request: InternalRequest) -> Result:
        """Applies one committed entry; returns its response, or the EtcdError it failed with.

        Never raises for what the entry holds: a failure no check caught becomes the entry's ApplyFailed
        answer. Only a failing backend (``storage_errors``) escapes: the member cannot go on without it.
        An index at or below the store's consistent index was applied before (WAL replay): None, nothing done.
        Invariant: when an entry fails after writing, what it wrote stays as one revision (the revision
        counter, the key index and the backend agree), and the same happens on every member.
        """
        if not self.store.advance_to(index):
            return None
        return self._apply_advanced(request)

    def _apply_advanced(self, request: InternalRequest) -> Result:
        """``apply_request`` once the store has recorded the entry's index."""
        try:
            return self._dispatch(request)
        except errors.EtcdError as exc:
            self.store.close_open_write()
            return exc
        except self.store.storage_errors:
            raise
        except Exception as exc:
            self.store.close_open_write()
            return ApplyFailed(exc)

    def _dispatch(self, request: InternalRequest) -> Message | None:
        kind = request.WhichOneof("request")
        if kind in _ADDS_DATA and self.alarms.has(rpc_pb2.NOSPACE) and _adds_data(request, kind):
            raise errors.ERR_NO_SPACE
        store = self.store
        if kind == "put":
            return store.put(request.put)
        if kind == "delete_range":
            return store.delete_range(request.delete_range)
        if kind == "txn":
            return store.txn(request.txn)
        if kind == "compaction":
            return store.compact(request.compaction)
        if kind == "lease_grant":
            return self._lease_grant(request.lease_grant)
        if kind == "lease_revoke":
            return self._lease_revoke(request.lease_revoke)
        if kind == "alarm":
            return self._alarm(request.alarm)
        if kind == "v2" and self.v2_applier is not None:
            return self.v2_applier(request.v2, store.consistent_index)
        return None

    def _lease_grant(self, request: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        lease = self.lessor.grant(request.ID, request.TTL)
        rows.put_lease(self.store.batch, lease.id, lease.ttl)
        response = rpc_pb2.LeaseGrantResponse(ID=lease.id, TTL=lease.ttl)
        response.header.revision = self.store.current_revision
        return response

    def _lease_revoke(self, request: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        """Deletes every key attached to the lease in one revision, then the lease."""
        keys = self.lessor.revoke(request.ID)
        response = rpc_pb2.LeaseRevokeResponse()
        response.header.revision = self.store.revoke_keys(keys)
        rows.delete_lease(self.store.batch, request.ID)
        return response

    def _alarm(self, request: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        """ACTIVATE raises the alarm (and answers it); DEACTIVATE clears it (and answers it if it was active);
        ACTIVATE of NONE changes nothing, as in etcd. An action or type ``check_alarm_request`` refuses fails."""
        check_alarm_request(request)
        response = rpc_pb2.AlarmResponse()
        response.header.revision = self.store.current_revision
        member = (request.memberID, request.alarm)
        if request.action == rpc_pb2.AlarmRequest.ACTIVATE:
            if request.alarm == rpc_pb2.NONE:
                return response
            rows.put_alarm(self.store.batch, *member)
            self.alarms.activate(*member)
        elif request.action == rpc_pb2.AlarmRequest.DEACTIVATE:
            if not self.alarms.deactivate(*member):
                return response
            rows.delete_alarm(self.store.batch, *member)
        else:
            return response
        response.alarms.add(memberID=request.memberID, alarm=request.alarm)
        return response

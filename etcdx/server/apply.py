"""The applier (etcd's applierV3): turns each committed log entry into its effect on the replicated state and
its answer. Pure: no trio, no I/O of its own; it runs in the server and, without an event loop, in the
seeded simulation.

It decodes an entry's InternalRequest, dispatches it by kind to the KV store (put, delete_range, txn,
compaction), the lessor (lease_grant, lease_revoke), the alarms (alarm) and the auth store (the auth admin
requests and Authenticate), refuses what may add data while the NOSPACE alarm is on, and turns whatever the
entry cannot do into that entry's answer. Conf changes will be dispatched here too.

Authorization (etcd's authApplierV3): an entry a client proposed carries an AuthHeader (the user and the auth
revision it was authorised under; an empty user when it came without one). Before its effect, apply checks it
against the auth store as it is now (etcdx.auth.checks): a permission revoked while the entry was in flight,
or a user deleted meanwhile, is refused here, with etcd's error. An entry the member proposed itself (lease
expiry, the NOSPACE alarm) carries no header and is not checked.

Determinism (every member applies the same entries the same way): the answer and the effect of an entry
depend only on its bytes and the applied state. Only a failing backend (``store.storage_errors``) escapes
``apply``: the member cannot go on without it (the WAL replays the entry after a restart).
Call ``apply`` inside ``store.apply_batch()``; ``store.commit()`` makes the batch durable.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator

from google.protobuf.message import Message

from etcdx import errors
from etcdx.auth import checks
from etcdx.auth.store import AuthStore
from etcdx.auth.tokens import AuthInfo, TokenProvider
from etcdx.lease.lessor import Lessor
from etcdx.log import get_logger
from etcdx.mvcc import rows
from etcdx.mvcc.alarms import Alarms, alarm_name, check_alarm_request
from etcdx.mvcc.kvstore import KVStore
from etcdx.mvcc.schema import META_CLUSTER_VERSION
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server import metrics

log = get_logger("etcdx.server.apply")

Result = Message | errors.EtcdError | None

# A key operation refused for a stale auth revision: etcd 3.5.1 answers it with the auth package's own text
# and code Unknown (it does not map that error for KV), so clientv3 does not retry it with a new token.
ERR_AUTH_OLD_REVISION_FOR_KEYS = errors.etcd_error(errors.StatusCode.UNKNOWN, "auth: revision in header is old")


@contextlib.contextmanager
def key_check_errors() -> Iterator[None]:
    """Around a key permission check: a stale revision is refused as etcd refuses it for key operations."""
    try:
        yield
    except errors.ERR_AUTH_OLD_REVISION:
        raise ERR_AUTH_OLD_REVISION_FOR_KEYS from None


class ApplyFailed(errors.EtcdError):
    """An entry that apply could not apply although no check refused it: the entry's answer, never a reason
    to stop. It depends only on the entry's bytes and the applied state, so every member that applies the
    entry gets the same error. ``cause`` is the exception (for the one log line the server writes)."""

    code = errors.StatusCode.INTERNAL

    def __init__(self, cause: BaseException) -> None:
        super().__init__(message=f"etcdserver: request cannot be applied ({type(cause).__name__})")
        self.cause = cause


_ADDS_DATA = frozenset(("put", "txn", "lease_grant"))
_AUTH_KINDS = frozenset(
    (
        "authenticate",
        "auth_enable",
        "auth_disable",
        "user_add",
        "user_delete",
        "user_change_password",
        "user_grant_role",
        "user_revoke_role",
        "role_add",
        "role_delete",
        "role_grant_permission",
        "role_revoke_permission",
    )
)


# What etcd's applier refuses while a CORRUPT alarm is active.
_REFUSED_WHEN_CORRUPT = frozenset({"put", "delete_range", "txn", "compaction", "lease_grant", "lease_revoke"})


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
    """Applies committed entries to ``store``, ``lessor`` (the one the store attaches keys to), ``alarms`` and
    ``auth`` (the auth store, built here from the backend's "auth" table, with ``tokens`` as its provider).

    Construction makes ``alarms`` and ``auth`` hold exactly what the store's backend holds (after a restart, or
    on a store opened on a restored snapshot). ``now`` gives the wall-clock seconds tokens are issued at."""

    def __init__(
        self,
        store: KVStore,
        lessor: Lessor,
        alarms: Alarms,
        tokens: TokenProvider | None = None,
        now: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.store = store
        self.lessor = lessor
        self.alarms = alarms
        self.tokens = tokens
        self._now = now
        self.persist_checkpoints = False  # --experimental-enable-lease-checkpoint-persist
        # Applies a V2Request at its log index (the server's v2 store, with --enable-v2); None: v2 entries are no-ops.
        self.v2_applier: Callable[[Message, int], object] | None = None
        # Entries applied per request kind ("put", "txn", ...), read when /metrics is scraped.
        self.applied_kinds: defaultdict[str, int] = defaultdict(int)
        with store.backend.begin_read() as view:
            alarms.replace(rows.alarms(view))
            recorded = rows.get_meta_bytes(view, META_CLUSTER_VERSION)
            # The cluster version recorded through the log (None until the leader records it on a new cluster).
            self.cluster_version: str | None = recorded.decode() if recorded is not None else None
            self.auth = AuthStore.load(rows.auth_records(view), tokens)

    def apply(self, index: int, data: bytes) -> Result:
        """``apply_request`` for an entry as the log holds it (a serialized InternalRequest). Bytes that do not
        parse are that entry's ApplyFailed answer (the same bytes fail the same way on every member)."""
        try:
            request = InternalRequest.FromString(data)
        except Exception as exc:  # DecodeError, or whatever else the decoder raises for these bytes
            return ApplyFailed(exc) if self.store.advance_to(index) else None
        return self.apply_request(index, request)

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
        try:
            return self._dispatch(index, request)
        except errors.EtcdError as exc:
            self.store.close_open_write()
            return exc
        except self.store.storage_errors:
            raise
        except Exception as exc:
            self.store.close_open_write()
            return ApplyFailed(exc)

    def _dispatch(self, index: int, request: InternalRequest) -> Message | None:
        kind = request.WhichOneof("request")
        self.applied_kinds[kind] += 1
        alarms = self.alarms
        if alarms.active and kind in _REFUSED_WHEN_CORRUPT and alarms.has(rpc_pb2.CORRUPT):
            raise errors.ERR_CORRUPT  # etcd's corrupt applier, outermost: before auth and the NOSPACE cap
        if self.auth.enabled and request.HasField("auth"):
            self._authorize(kind, request, AuthInfo(request.auth.username, request.auth.revision))
        if alarms.active and kind in _ADDS_DATA and alarms.has(rpc_pb2.NOSPACE) and _adds_data(request, kind):
            raise errors.ERR_NO_SPACE
        if kind in _AUTH_KINDS:
            return self._apply_auth(index, kind, getattr(request, kind))
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
        if kind == "lease_checkpoint":
            return self._lease_checkpoint(request.lease_checkpoint)
        if kind == "cluster_version_set":
            self.cluster_version = request.cluster_version_set.ver
            rows.put_meta_bytes(store.batch, META_CLUSTER_VERSION, self.cluster_version.encode())
            return None
        if kind == "v2" and self.v2_applier is not None:
            return self.v2_applier(request.v2, store.consistent_index)
        return None

    def _lease_keys(self, lease_id: int) -> list[bytes]:
        lease = self.lessor.leases.get(lease_id)
        return sorted(lease.keys) if lease is not None else []

    def _authorize(self, kind: str | None, request: InternalRequest, info: AuthInfo) -> None:
        """Raises the EtcdError etcd answers when ``info`` may not do ``request`` (nothing while auth is off)."""
        auth = self.auth
        if not auth.enabled:
            return
        if kind in ("put", "delete_range", "txn", "lease_revoke"):
            with key_check_errors():
                self._check_keys(kind, request, info)
        elif kind == "lease_grant":
            auth.check_authenticated(info)
        elif kind == "authenticate":
            return  # the password was checked before proposing; check_authenticate runs below
        elif kind == "alarm" and request.alarm.action == rpc_pb2.AlarmRequest.GET:
            return  # listing alarms takes no role (the gate checked the token), as in etcd
        else:  # compaction, alarm changes and every auth admin request: root only
            auth.check_admin(info)

    def _check_keys(self, kind: str, request: InternalRequest, info: AuthInfo) -> None:
        auth = self.auth
        if kind == "put":
            checks.check_put(auth, info, request.put, self._lease_keys)
        elif kind == "delete_range":
            checks.check_delete_range(auth, info, request.delete_range)
        elif kind == "txn":
            checks.check_txn(auth, info, request.txn, self._lease_keys)
        else:
            checks.check_lease_revoke(auth, info, self._lease_keys(request.lease_revoke.ID))

    def _apply_auth(self, index: int, kind: str, request: Message) -> Message:
        """The auth admin requests and Authenticate: the store's mutation, its records written to the "auth"
        table in this entry's batch, and etcd's (empty) response."""
        auth = self.auth
        if kind == "authenticate":
            auth.check_authenticate(request.name, request.checked_revision)
            token = self.tokens.assign(
                request.name, auth.revision, self._now(), simple_prefix=request.simple_prefix, index=index
            )
            response: Message = rpc_pb2.AuthenticateResponse(token=token)
        elif kind == "auth_enable":
            records = auth.auth_enable()
            response = rpc_pb2.AuthEnableResponse()
        elif kind == "auth_disable":
            records = auth.auth_disable()
            response = rpc_pb2.AuthDisableResponse()
        elif kind == "user_add":
            records = auth.user_add(request.name, request.password_hash, no_password=request.no_password)
            response = rpc_pb2.AuthUserAddResponse()
        elif kind == "user_delete":
            records = auth.user_delete(request.name)
            response = rpc_pb2.AuthUserDeleteResponse()
        elif kind == "user_change_password":
            records = auth.user_change_password(request.name, request.password_hash)
            response = rpc_pb2.AuthUserChangePasswordResponse()
        elif kind == "user_grant_role":
            records = auth.user_grant_role(request.user, request.role)
            response = rpc_pb2.AuthUserGrantRoleResponse()
        elif kind == "user_revoke_role":
            records = auth.user_revoke_role(request.name, request.role)
            response = rpc_pb2.AuthUserRevokeRoleResponse()
        elif kind == "role_add":
            records = auth.role_add(request.name)
            response = rpc_pb2.AuthRoleAddResponse()
        elif kind == "role_delete":
            records = auth.role_delete(request.role)
            response = rpc_pb2.AuthRoleDeleteResponse()
        elif kind == "role_grant_permission":
            perm = request.perm if request.HasField("perm") else None
            records = auth.role_grant_permission(request.name, perm)
            response = rpc_pb2.AuthRoleGrantPermissionResponse()
        else:  # role_revoke_permission
            records = auth.role_revoke_permission(request.role, request.key, request.range_end)
            response = rpc_pb2.AuthRoleRevokePermissionResponse()
        if kind != "authenticate":
            rows.write_auth(self.store.batch, records)
        response.header.revision = self.store.current_revision
        return response

    def _lease_grant(self, request: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        lease = self.lessor.grant(request.ID, request.TTL)
        metrics.LEASE_TTL.observe(lease.ttl)
        rows.put_lease(self.store.batch, lease.id, lease.ttl)
        response = rpc_pb2.LeaseGrantResponse(ID=lease.id, TTL=lease.ttl)
        response.header.revision = self.store.current_revision
        return response

    def _lease_checkpoint(self, request: rpc_pb2.LeaseCheckpointRequest) -> rpc_pb2.LeaseCheckpointResponse:
        """The leader's remaining TTLs (lease checkpoints); kept in the lease rows too with ``persist_checkpoints``.
        A lease revoked meanwhile is skipped."""
        for checkpoint in request.checkpoints:
            lease = self.lessor.checkpoint(checkpoint.ID, checkpoint.remaining_TTL)
            if lease is not None and self.persist_checkpoints:
                rows.put_lease(self.store.batch, lease.id, lease.ttl, lease.remaining_ttl)
        response = rpc_pb2.LeaseCheckpointResponse()
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
        ACTIVATE of NONE changes nothing, as in etcd; GET answers the active alarms, filtered by member and
        type (etcd's GET goes through the log too). An action or type ``check_alarm_request`` refuses fails."""
        check_alarm_request(request)
        response = rpc_pb2.AlarmResponse()
        response.header.revision = self.store.current_revision
        member = (request.memberID, request.alarm)
        if request.action == rpc_pb2.AlarmRequest.ACTIVATE:
            if request.alarm == rpc_pb2.NONE:
                return response
            first_of_type = not self.alarms.has(request.alarm)
            rows.put_alarm(self.store.batch, *member)
            self.alarms.activate(*member)
            if first_of_type:  # etcd logs the type's first activation
                log.warning("alarm raised", alarm=alarm_name(request.alarm), **{"from": f"{request.memberID:x}"})
        elif request.action == rpc_pb2.AlarmRequest.DEACTIVATE:
            if not self.alarms.deactivate(*member):
                return response
            rows.delete_alarm(self.store.batch, *member)
            if not self.alarms.has(request.alarm):
                log.warning("alarm disarmed", alarm=alarm_name(request.alarm), **{"from": f"{request.memberID:x}"})
        else:
            listed = self.alarms.list(request.memberID, request.alarm)
            response.alarms.extend(rpc_pb2.AlarmMember(memberID=m, alarm=a) for m, a in listed)
            return response
        response.alarms.add(memberID=request.memberID, alarm=request.alarm)
        return response

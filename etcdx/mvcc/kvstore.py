"""KVStore: etcd 3.5's revisioned key-value semantics over the key index and the LMDB backend.

Pure logic: the backend object passed in is the only thing that touches the disk.

The server applies committed log entries with ``apply`` inside ``apply_batch`` and serves reads with ``range``
between batches. Batch transaction (etcd's batchTx): one LMDB write transaction stays open across apply
batches until the server calls ``commit`` (each commit costs an fdatasync). Invariant: every read (ranges,
txns, watch history, prev_kv) goes through that open transaction when there is one, so it sees every
applied write, committed or not; reads open a read transaction only when no write transaction is open.
The committed file may lag the applied state; the WAL covers the gap (``committed_index``).
Every rule here was checked against etcd 3.5.1 by the differential tests (tests/compat).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from etcdx import errors
from etcdx._native import load
from etcdx.lease.lessor import Lessor
from etcdx.mvcc import schema as meta
from etcdx.mvcc.alarms import Alarms, check_alarm_request
from etcdx.mvcc.key_index import KeyIndex
from etcdx.mvcc.revision import backend_key, main_of, pack, parse_backend_key
from etcdx.mvcc.txn import apply_txn, read_txn
from etcdx.mvcc.write_txn import ReadView, WriteTxn, range_end
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.pb.mvccpb import kv_pb2

if TYPE_CHECKING:
    from etcdx.mvcc.backend import Backend

rangecodec = load("rangecodec")
RangeRequest = rpc_pb2.RangeRequest


class ApplyFailed(errors.EtcdError):
    """An entry that apply could not apply although no check refused it: the entry's answer, never a reason
    to stop. It depends only on the entry's bytes and the applied state, so every member that applies the
    entry gets the same error. ``cause`` is the exception (for the one log line the server writes)."""

    code = errors.StatusCode.INTERNAL

    def __init__(self, cause: BaseException) -> None:
        super().__init__(message=f"etcdserver: request cannot be applied ({type(cause).__name__})")
        self.cause = cause


def _stored_kvs_answer(r: rpc_pb2.RangeRequest) -> bool:
    """Whether the response lists the stored KeyValues unchanged, in key order (ascending, or descending
    for a DESCEND sort by key): values wanted, no revision filter, no sort by a KeyValue field."""
    return not (
        r.keys_only
        or r.sort_target != RangeRequest.KEY
        or r.min_mod_revision
        or r.max_mod_revision
        or r.min_create_revision
        or r.max_create_revision
    )


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


class KVStore:
    def __init__(self, backend: Backend, lessor: Lessor | None = None, alarms: Alarms | None = None) -> None:
        self.backend = backend
        self.index = KeyIndex()
        self.lessor = lessor if lessor is not None else Lessor(min_ttl=1, clock=lambda: 0.0)
        self.alarms = alarms if alarms is not None else Alarms()
        for member_id, alarm in backend.scan_alarms():
            self.alarms.activate(member_id, alarm)
        self._wtxn = None  # the batch transaction while one is open
        self._uncommitted_entries = 0  # entries applied into the open batch transaction
        self._holds_compaction = False
        self._open_write: WriteTxn | None = None
        self.storage_errors = backend.storage_errors
        self._events: list[tuple[int, list[kv_pb2.Event]]] = []
        # Applies a V2Request at a log index (the server's v2 store, with --enable-v2); None: v2 entries are no-ops.
        self.v2_applier: Callable[[Message, int], object] | None = None
        # The v2 store's state to commit with the consistent index (None when unchanged since the last commit).
        self.v2_state: Callable[[], bytes | None] | None = None
        with backend.begin_read() as txn:
            self._consistent_index = backend.get_meta_int(txn, meta.META_CONSISTENT_INDEX, 0)
            self._compact_rev = backend.get_meta_int(txn, meta.META_FINISHED_COMPACT, -1)
            scheduled = backend.get_meta_int(txn, meta.META_SCHEDULED_COMPACT, -1)
        self._committed_index = self._consistent_index
        for lease_id, ttl in backend.scan_leases():
            self.lessor.restore(lease_id, ttl)
        self._current_rev = max(1, self._compact_rev, self._restore_index())
        if scheduled > self._compact_rev:
            with self.apply_batch():
                self._compact(scheduled)
            self.commit()

    def _restore_index(self) -> int:
        """Rebuilds the key index from the backend in revision order; returns the newest main revision."""
        newest = 0
        lease_of: dict[bytes, int] = {}
        for raw_key, value in self.backend.scan_revisions():
            rev, tombstone = parse_backend_key(raw_key)
            kv = kv_pb2.KeyValue.FromString(value)
            if tombstone:
                self.index.restore_tombstone(kv.key, rev)
                lease_of.pop(kv.key, None)
            else:
                self.index.restore(kv.key, rev, kv.create_revision, kv.version)
                lease_of[kv.key] = kv.lease
            newest = main_of(rev)
        for key, lease_id in lease_of.items():
            if lease_id:
                self.lessor.on_put(key, lease_id)
        return newest

    # -- state -----------------------------------------------------------------------------

    @property
    def current_revision(self) -> int:
        return self._current_rev

    @property
    def compact_revision(self) -> int:
        """The last compaction's revision; -1 if the store was never compacted (etcd's initial value)."""
        return self._compact_rev

    @property
    def consistent_index(self) -> int:
        """The index of the last applied entry (committed to the backend or not)."""
        return self._consistent_index

    @property
    def committed_index(self) -> int:
        """The consistent index the backend file holds: that of the last ``commit``."""
        return self._committed_index

    @property
    def batch_open(self) -> bool:
        """Whether a batch transaction is open (it may hold no entry yet)."""
        return self._wtxn is not None

    @property
    def uncommitted_entries(self) -> int:
        """Entries applied since the last ``commit`` (0: no batch transaction is open)."""
        return self._uncommitted_entries

    @property
    def holds_compaction(self) -> bool:
        """Whether the batch transaction holds a compaction: etcd commits one at once (the freed space and
        the compacted revision are then what Status and a restart see)."""
        return self._holds_compaction

    @contextmanager
    def _reading(self) -> Iterator[object]:
        """The transaction a read goes through: the open batch transaction, else a new read transaction."""
        if self._wtxn is not None:
            yield self._wtxn
        else:
            with self.backend.begin_read() as txn:
                yield txn

    # -- reads -----------------------------------------------------------------------------

    def range(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """Serves a Range at the current revision (or the one requested); raises EtcdError."""
        if self._wtxn is not None:
            return self._view(self._wtxn, self._current_rev).range(request)
        # py-lmdb leaks a reader slot when an exception is raised while a read txn is open, so the
        # revision errors are raised here, before the txn exists.
        self._check_read_revision(request.revision)
        with self.backend.begin_read() as txn:
            return self._view(txn, self._current_rev).range(request)

    def read_txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """Serves a read-only txn (``txn.is_read_only``) at the current revision, as ``range`` serves a Range:
        no log entry, no revision. Raises EtcdError as applying it would."""
        if self._wtxn is not None:
            return read_txn(self, self._view(self._wtxn, self._current_rev), request)
        with self.backend.begin_read() as txn:
            try:
                return read_txn(self, self._view(txn, self._current_rev), request)
            except errors.EtcdError as exc:
                refused = exc  # raised below, once the read txn is closed (see ``range``)
        raise refused

    def range_encoded(self, request: rpc_pb2.RangeRequest, header: rpc_pb2.ResponseHeader) -> bytes:
        """``range(request)`` serialized, with ``header`` as its header: ``header`` brings the identity
        fields and its revision is set here to the store revision the read saw. Raises EtcdError.

        Counts, and reads whose response is the stored KeyValues in key order (``_stored_kvs_answer``),
        copy the stored bytes into the response with rangecodec and parse nothing (through the batch
        transaction too); the others serialize ``range``'s response.
        """
        if request.count_only or _stored_kvs_answer(request):
            return self._range_stored(request, header)
        response = self.range(request)
        header.revision = response.header.revision
        response.header.CopyFrom(header)
        return response.SerializeToString()

    def _range_stored(self, r: rpc_pb2.RangeRequest, header: rpc_pb2.ResponseHeader) -> bytes:
        """ReadView.range's answer for a count or a ``_stored_kvs_answer`` request, encoded directly."""
        self._check_read_revision(r.revision)
        pairs = self.index.range(r.key, range_end(r.range_end), r.revision if r.revision > 0 else self._current_rev)
        count = len(pairs)
        header.revision = self._current_rev
        if r.count_only:
            return rangecodec.encode(header.SerializeToString(), [], False, count)
        if r.sort_order == RangeRequest.DESCEND:
            pairs.reverse()
        more = 0 < r.limit < count
        if more:
            del pairs[r.limit :]
        wanted = [backend_key(rev) for _, rev in pairs]
        txn = self._wtxn
        if txn is not None:
            found = txn.cursor(db=self.backend.key_db).getmulti(wanted)
        else:
            with self.backend.begin_read() as txn:
                found = txn.cursor(db=self.backend.key_db).getmulti(wanted)
        if len(found) != len(wanted):
            raise RuntimeError("mvcc: the key index names revisions the backend does not hold")
        return rangecodec.encode(header.SerializeToString(), [kv for _, kv in found], more, count)

    def _check_read_revision(self, rev: int) -> None:
        if rev > self._current_rev:
            raise errors.ERR_FUTURE_REV
        if 0 < rev < self._compact_rev:
            raise errors.ERR_COMPACTED

    def _view(self, txn, rev: int) -> ReadView:
        return ReadView(self, txn, rev)

    def read_kv(self, txn, rev: int) -> kv_pb2.KeyValue:
        return kv_pb2.KeyValue.FromString(txn.get(backend_key(rev), db=self.backend.key_db))

    def history(self, first: int, last: int) -> list[tuple[int, list[kv_pb2.Event]]]:
        """The events of revisions first..last from the backend, as watchers see them."""
        revisions: list[tuple[int, list[kv_pb2.Event]]] = []
        with self._reading() as txn:
            cursor = txn.cursor(db=self.backend.key_db)
            if not cursor.set_range(backend_key(pack(first, 0))):
                return revisions
            for raw_key, value in cursor:
                rev, tombstone = parse_backend_key(raw_key)
                main = main_of(rev)
                if main > last:
                    break
                kv = kv_pb2.KeyValue.FromString(value)
                if tombstone:
                    event = kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=kv.key, mod_revision=main))
                else:
                    event = kv_pb2.Event(type=kv_pb2.Event.PUT, kv=kv)
                if revisions and revisions[-1][0] == main:
                    revisions[-1][1].append(event)
                else:
                    revisions.append((main, [event]))
        return revisions

    def previous_kv(self, key: bytes, revision: int) -> kv_pb2.KeyValue | None:
        """The value ``key`` had just before ``revision``; None if absent or compacted away."""
        before = revision - 1
        if before < self._compact_rev or before <= 0:
            return None
        found = self.index.get(key, before)
        if found is None:
            return None
        with self._reading() as txn:
            return self.read_kv(txn, found[0])

    # -- writes ----------------------------------------------------------------------------

    @contextmanager
    def apply_batch(self) -> Iterator[None]:
        """Several ``apply`` calls inside the batch transaction, opened here if none is open and left open
        (``commit`` ends it). An exception aborts it: every entry applied since the last commit is lost
        from the backend while the in-memory state keeps it, so the caller must stop (the WAL replays them)."""
        if self._wtxn is None:
            self._wtxn = self.backend.begin_write()
        try:
            yield
        except BaseException:
            self.abort()
            raise

    def commit(self) -> int:
        """Commits the batch transaction, if one is open, with the consistent index it reached; returns
        ``committed_index``. Blocking (LMDB fdatasyncs the pages), and on the thread that applied: an LMDB
        write transaction ends on the thread that began it. Raises ``storage_errors`` (the transaction is
        then gone: the caller stops)."""
        txn = self._wtxn
        if txn is None:
            return self._committed_index
        self._wtxn = None
        self._uncommitted_entries = 0
        self._holds_compaction = False
        try:
            if self.v2_state is not None and (state := self.v2_state()) is not None:
                self.backend.put_meta_bytes(txn, meta.META_V2_STORE, state)
            self.backend.put_meta_int(txn, meta.META_CONSISTENT_INDEX, self._consistent_index)
            txn.commit()
        except BaseException:
            with suppress(Exception):  # a failed commit may have ended the transaction already
                txn.abort()
            raise
        self._committed_index = self._consistent_index
        return self._committed_index

    def saved_v2_state(self) -> bytes | None:
        """The v2 store's state as of the consistent index, if one was ever committed."""
        with self.backend.begin_read() as txn:
            return self.backend.get_meta_bytes(txn, meta.META_V2_STORE)

    def abort(self) -> None:
        """Drops the batch transaction, if one is open, and what it holds (for a member that stops)."""
        txn, self._wtxn = self._wtxn, None
        self._uncommitted_entries = 0
        self._holds_compaction = False
        if txn is not None:
            txn.abort()

    def apply_data(self, index: int, data: bytes) -> Message | errors.EtcdError | None:
        """``apply`` for an entry as the log holds it (a serialized InternalRequest). Bytes that do not parse
        are that entry's ApplyFailed answer (the same bytes fail the same way on every member)."""
        if index <= self._consistent_index:
            return None
        try:
            request = InternalRequest.FromString(data)
        except Exception as exc:  # DecodeError, or whatever else the decoder raises for these bytes
            self._consistent_index = index
            self._uncommitted_entries += 1
            return ApplyFailed(exc)
        return self.apply(index, request)

    def apply(self, index: int, request: InternalRequest) -> Message | errors.EtcdError | None:
        """Applies one committed entry; returns its response, or the EtcdError it failed with.

        Never raises for what the entry holds: a failure no check caught becomes the entry's ApplyFailed
        answer. Only a failing backend (``storage_errors``) escapes: the member cannot go on without it.
        An index at or below the consistent index was applied before (WAL replay) and is skipped.
        Invariant: when an entry fails after writing, what it wrote stays as one revision (the revision
        counter, the key index and the backend agree), and the same happens on every member.
        """
        if index <= self._consistent_index:
            return None
        self._consistent_index = index
        self._uncommitted_entries += 1
        try:
            return self._dispatch(request)
        except errors.EtcdError as exc:
            self._close_open_write()
            return exc
        except self.storage_errors:
            raise
        except Exception as exc:
            self._close_open_write()
            return ApplyFailed(exc)

    def _dispatch(self, request: InternalRequest) -> Message | None:
        kind = request.WhichOneof("request")
        if kind in _ADDS_DATA and self.alarms.has(rpc_pb2.NOSPACE) and _adds_data(request, kind):
            raise errors.ERR_NO_SPACE
        if kind == "put":
            return self._put(request.put)
        if kind == "delete_range":
            return self._delete_range(request.delete_range)
        if kind == "txn":
            return apply_txn(self, request.txn)
        if kind == "compaction":
            return self._compact_request(request.compaction)
        if kind == "lease_grant":
            return self._lease_grant(request.lease_grant)
        if kind == "lease_revoke":
            return self._lease_revoke(request.lease_revoke)
        if kind == "alarm":
            return self._alarm(request.alarm)
        if kind == "v2" and self.v2_applier is not None:
            return self.v2_applier(request.v2, self._consistent_index)
        return None

    def _close_open_write(self) -> None:
        """Ends the write transaction a failed entry left open: its changes, if any, become a revision."""
        txn, self._open_write = self._open_write, None
        if txn is not None and txn.changes:
            self.end_write(txn)

    def begin_write(self) -> WriteTxn:
        self._open_write = WriteTxn(self, self._wtxn, self._current_rev)
        return self._open_write

    def end_write(self, txn: WriteTxn) -> int:
        """Closes a write transaction; returns the revision it produced (or the current one if none)."""
        self._open_write = None
        if txn.changes:
            self._current_rev += 1
            self._events.append((self._current_rev, txn.events))
        return self._current_rev

    def take_events(self) -> list[tuple[int, list[kv_pb2.Event]]]:
        """(revision, events) of every write applied since the last call, in revision order."""
        events, self._events = self._events, []
        return events

    def lease_exists(self, lease_id: int) -> bool:
        return self.lessor.exists(lease_id)

    def _lease_grant(self, request: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        lease = self.lessor.grant(request.ID, request.TTL)
        self.backend.put_lease(self._wtxn, lease.id, lease.ttl)
        response = rpc_pb2.LeaseGrantResponse(ID=lease.id, TTL=lease.ttl)
        response.header.revision = self._current_rev
        return response

    def _lease_revoke(self, request: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        """Deletes every key attached to the lease in one revision, then the lease."""
        keys = self.lessor.revoke(request.ID)
        txn = self.begin_write()
        for key in keys:
            txn.delete_range(key, None)
        self.backend.delete_lease(self._wtxn, request.ID)
        response = rpc_pb2.LeaseRevokeResponse()
        response.header.revision = self.end_write(txn)
        return response

    def _alarm(self, request: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        """ACTIVATE raises the alarm (and answers it); DEACTIVATE clears it (and answers it if it was active);
        ACTIVATE of NONE changes nothing, as in etcd. An action or type ``check_alarm_request`` refuses fails."""
        check_alarm_request(request)
        response = rpc_pb2.AlarmResponse()
        response.header.revision = self._current_rev
        member = (request.memberID, request.alarm)
        if request.action == rpc_pb2.AlarmRequest.ACTIVATE:
            if request.alarm == rpc_pb2.NONE:
                return response
            self.backend.put_alarm(self._wtxn, *member)
            self.alarms.activate(*member)
        elif request.action == rpc_pb2.AlarmRequest.DEACTIVATE:
            if not self.alarms.deactivate(*member):
                return response
            self.backend.delete_alarm(self._wtxn, *member)
        else:
            return response
        response.alarms.add(memberID=request.memberID, alarm=request.alarm)
        return response

    def _put(self, request: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        if request.lease and not self.lease_exists(request.lease):
            raise errors.ERR_LEASE_NOT_FOUND
        txn = self.begin_write()
        response = txn.put_request(request)
        response.header.revision = self.end_write(txn)
        return response

    def _delete_range(self, request: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        txn = self.begin_write()
        response = txn.delete_range_request(request)
        response.header.revision = self.end_write(txn)
        return response

    def _compact_request(self, request: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        if request.revision <= self._compact_rev:
            raise errors.ERR_COMPACTED
        if request.revision > self._current_rev:
            raise errors.ERR_FUTURE_REV
        self._compact(request.revision)
        response = rpc_pb2.CompactionResponse()
        response.header.revision = self._current_rev
        return response

    def _compact(self, rev: int) -> None:
        """Physically removes history older than ``rev`` (inside the current batch).

        Every row at ``rev`` itself stays, tombstones included (the key index forgets a key deleted at
        ``rev``, the backend keeps its tombstone until a later compaction): a watcher may still start or
        resume at ``rev``, and the DELETE events of ``rev`` must be there for it to read.
        """
        txn = self._wtxn
        self.backend.put_meta_int(txn, meta.META_SCHEDULED_COMPACT, rev)
        keep = self.index.compact(rev)
        bound = backend_key(pack(rev, 0))
        cursor = txn.cursor(db=self.backend.key_db)
        doomed = []
        for raw_key in cursor.iternext(values=False):
            if raw_key >= bound:
                break
            packed, _ = parse_backend_key(raw_key)
            if packed not in keep:
                doomed.append(raw_key)
        for raw_key in doomed:
            txn.delete(raw_key, db=self.backend.key_db)
        self._compact_rev = rev
        self._holds_compaction = True
        self.backend.put_meta_int(txn, meta.META_FINISHED_COMPACT, rev)

"""KVStore: etcd 3.5's revisioned key-value semantics over the key index and a storage backend.

Pure logic: the backend passed in (tables.py: the LMDB file, or memory) is the only thing that stores.
KVStore keeps MVCC: revisions, the key index, ranges, write transactions, compaction, watch events and the
consistent index. It does not decide what a log entry does: the applier (server/apply.py) dispatches each
entry to ``put`` / ``delete_range`` / ``txn`` / ``compact`` / ``revoke_keys`` after ``advance_to``.

The server applies committed log entries inside ``apply_batch`` and serves reads with ``range`` between
batches. Batch transaction (etcd's batchTx): one backend write transaction stays open across apply batches
until the server calls ``commit`` (on LMDB each commit costs an fdatasync). Invariant: every read (ranges,
txns, watch history, prev_kv) goes through that open transaction when there is one, so it sees every applied
write, committed or not; reads open a read view only when no write transaction is open. The committed state
may lag the applied state; the WAL covers the gap (``committed_index``).
Every rule here was checked against etcd 3.5.1 by the differential tests (tests/compat).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from etcdx import errors
from etcdx._native import load
from etcdx.lease.lessor import Lessor
from etcdx.mvcc import rows
from etcdx.mvcc import schema as meta
from etcdx.mvcc.key_index import KeyIndex
from etcdx.mvcc.revision import backend_key, main_of, pack, parse_backend_key
from etcdx.mvcc.schema import KEY_DB
from etcdx.mvcc.tables import StorageBackend, TableView, TableWriter
from etcdx.mvcc.txn import apply_txn, read_txn
from etcdx.mvcc.write_txn import ReadView, WriteTxn, range_end
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.mvccpb import kv_pb2

rangecodec = load("rangecodec")
RangeRequest = rpc_pb2.RangeRequest


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


class KVStore:
    def __init__(self, backend: StorageBackend, lessor: Lessor | None = None) -> None:
        """Opens the store on ``backend``'s committed state: restores the leases into ``lessor`` (a new one, with
        no leases yet; the store keeps it told of the keys attached to them), rebuilds the key index, and
        finishes a compaction that a stop interrupted. No write transaction of ``backend`` may be open."""
        self.backend = backend
        self._apply_batch = _ApplyBatch(self)
        self.index = KeyIndex()
        self.lessor = lessor if lessor is not None else Lessor(min_ttl=1, clock=lambda: 0.0)
        self._wtxn: TableWriter | None = None  # the batch transaction while one is open
        self._uncommitted_entries = 0  # entries applied into the open batch transaction
        self._holds_compaction = False
        # Keys a compaction deletes per batch transaction (<= 0: all in the compaction's own); the rest wait in
        # _doomed for continue_compaction. Set by the server; 0 while the constructor finishes a compaction.
        self.compaction_batch_limit = 0
        self._doomed: list[bytes] = []
        self._open_write: WriteTxn | None = None
        self.storage_errors = backend.storage_errors
        self._events: list[tuple[int, list[kv_pb2.Event]]] = []
        # Whether writes record their watch events for ``take_events``. A WatchHub over this store keeps it true
        # exactly while a synced watcher exists (only synced watchers are sent live events; the others catch up
        # from the backend), so a write nobody watches builds no Event.
        self.keep_events = True
        self.compacted_keys = 0  # backend rows removed by compactions since start (a /metrics series)
        # The v2 store's state to commit with the consistent index (None when unchanged since the last commit).
        self.v2_state: Callable[[], bytes | None] | None = None
        with backend.begin_read() as view:
            self._consistent_index = rows.get_meta_int(view, meta.META_CONSISTENT_INDEX, 0)
            self._consistent_term = rows.get_meta_int(view, meta.META_TERM, 0)
            self._compact_rev = rows.get_meta_int(view, meta.META_FINISHED_COMPACT, -1)
            scheduled = rows.get_meta_int(view, meta.META_SCHEDULED_COMPACT, -1)
            for lease_id, ttl, remaining_ttl in rows.leases_with_remaining(view):
                self.lessor.restore(lease_id, ttl, remaining_ttl)
            newest = self._restore_index(view)
        self._committed_index = self._consistent_index
        self._current_rev = max(1, self._compact_rev, newest)
        if scheduled > self._compact_rev:
            with self.apply_batch():
                self._compact(scheduled)
            self.commit()

    def _restore_index(self, view: TableView) -> int:
        """Rebuilds the key index from the key table in revision order; returns the newest main revision.
        The loop runs once per stored revision (millions at scale): it is start-up's longest step."""
        newest_rev = 0
        lease_of: dict[bytes, int] = {}  # keys whose newest row is a put with a lease: that lease
        restore, restore_tombstone = self.index.restore, self.index.restore_tombstone
        decode = kv_pb2.KeyValue.FromString
        for raw_key, value in view.scan(KEY_DB):
            newest_rev, tombstone = parse_backend_key(raw_key)
            kv = decode(value)
            key = kv.key
            if tombstone:
                restore_tombstone(key, newest_rev)
                lease_of.pop(key, None)
            else:
                restore(key, newest_rev, kv.create_revision, kv.version)
                if kv.lease:
                    lease_of[key] = kv.lease
                elif lease_of:
                    lease_of.pop(key, None)
        for key, lease_id in lease_of.items():
            self.lessor.on_put(key, lease_id)
        return main_of(newest_rev)

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
    def consistent_term(self) -> int:
        """The term of the entry at ``consistent_index`` (0 for a backend written before terms were kept)."""
        return self._consistent_term

    def note_applied(self, index: int, term: int) -> None:
        """Entry (index, term) has been applied: through ``apply`` for a request, or by the caller for an entry
        that holds none (a leader's empty entry, a membership change). Inside ``apply_batch``; the next commit
        persists both numbers. An index at or below the consistent index (a replay) changes nothing."""
        if index > self._consistent_index:
            self._consistent_index = index
            self._uncommitted_entries += 1
        if index == self._consistent_index:
            self._consistent_term = term

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

    @property
    def batch(self) -> TableWriter:
        """The open batch transaction, for the applier's rows in the other tables (lease, alarm)."""
        if self._wtxn is None:
            raise RuntimeError("mvcc: no batch transaction is open (apply inside apply_batch)")
        return self._wtxn

    @contextmanager
    def _reading(self) -> Iterator[TableView]:
        """What a read goes through: the open batch transaction, else a new read view."""
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
        # revision errors are raised here, before the view exists.
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

    def range_encoded(self, request: rpc_pb2.RangeRequest, identity: tuple[int, int, int]) -> bytes:
        """``range(request)`` serialized, its header holding ``identity`` (cluster_id, member_id, raft_term: who
        answers) and the store revision the read saw. Raises EtcdError.

        Counts, and reads whose response is the stored KeyValues in key order (``_stored_kvs_answer``),
        copy the stored bytes into the response with rangecodec and parse nothing (through the batch
        transaction too); the others serialize ``range``'s response.
        """
        if request.count_only or _stored_kvs_answer(request):
            return self._range_stored(request, identity)
        response = self.range(request)
        header = response.header  # range() sets its revision only
        header.cluster_id, header.member_id, header.raft_term = identity
        return response.SerializeToString()

    def _range_stored(self, r: rpc_pb2.RangeRequest, identity: tuple[int, int, int]) -> bytes:
        """ReadView.range's answer for a count or a ``_stored_kvs_answer`` request, encoded directly."""
        self._check_read_revision(r.revision)
        at_main = r.revision if r.revision > 0 else self._current_rev
        cluster_id, member_id, raft_term = identity
        header = rangecodec.encode_header(cluster_id, member_id, self._current_rev, raft_term)
        if r.count_only:
            count = self.index.count(r.key, range_end(r.range_end), at_main)
            return rangecodec.encode(header, [], False, count)
        if r.limit > 0 and r.sort_order != RangeRequest.DESCEND:
            pairs, count = self.index.page(r.key, range_end(r.range_end), at_main, r.limit)
        else:
            pairs = self.index.range(r.key, range_end(r.range_end), at_main)
            count = len(pairs)
            if r.sort_order == RangeRequest.DESCEND:
                pairs.reverse()
            if 0 < r.limit < count:
                del pairs[r.limit :]
        more = 0 < r.limit < count
        wanted = [backend_key(rev) for _, rev in pairs]
        txn = self._wtxn
        found = (txn if txn is not None else self.backend).get_many(KEY_DB, wanted)
        if len(found) != len(wanted):
            raise RuntimeError("mvcc: the key index names revisions the backend does not hold")
        return rangecodec.encode(header, found, more, count)

    def _check_read_revision(self, rev: int) -> None:
        if rev > self._current_rev:
            raise errors.ERR_FUTURE_REV
        if 0 < rev < self._compact_rev:
            raise errors.ERR_COMPACTED

    def _view(self, view: TableView, rev: int) -> ReadView:
        return ReadView(self, view, rev)

    def read_kv(self, view: TableView, rev: int) -> kv_pb2.KeyValue:
        return kv_pb2.KeyValue.FromString(view.get(KEY_DB, backend_key(rev)))

    def history(self, first: int, last: int) -> list[tuple[int, list[kv_pb2.Event]]]:
        """The events of revisions first..last from the backend, as watchers see them."""
        revisions: list[tuple[int, list[kv_pb2.Event]]] = []
        with self._reading() as view:
            for raw_key, value in view.scan(KEY_DB, backend_key(pack(first, 0))):
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
        with self._reading() as view:
            return self.read_kv(view, found[0])

    # -- writes ----------------------------------------------------------------------------

    def apply_batch(self) -> _ApplyBatch:
        """Several entries applied inside the batch transaction, opened here if none is open and left open
        (``commit`` ends it). An exception aborts it: every entry applied since the last commit is lost
        from the backend while the in-memory state keeps it, so the caller must stop (the WAL replays them)."""
        if self._wtxn is None:
            self._wtxn = self.backend.begin_write()
        return self._apply_batch

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
                rows.put_meta_bytes(txn, meta.META_V2_STORE, state)
            rows.put_meta_int(txn, meta.META_CONSISTENT_INDEX, self._consistent_index)
            rows.put_meta_int(txn, meta.META_TERM, self._consistent_term)
            txn.commit()
        except BaseException:
            with suppress(Exception):  # a failed commit may have ended the transaction already
                txn.abort()
            raise
        self._committed_index = self._consistent_index
        return self._committed_index

    def saved_v2_state(self) -> bytes | None:
        """The v2 store's state as of the consistent index, if one was ever committed."""
        with self.backend.begin_read() as view:
            return rows.get_meta_bytes(view, meta.META_V2_STORE)

    def abort(self) -> None:
        """Drops the batch transaction, if one is open, and what it holds (for a member that stops)."""
        txn, self._wtxn = self._wtxn, None
        self._uncommitted_entries = 0
        self._holds_compaction = False
        if txn is not None:
            txn.abort()

    def advance_to(self, index: int) -> bool:
        """Records log entry ``index`` as applied into the open batch (it commits with the batch); False, and
        nothing recorded, when ``index`` is at or below the consistent index (applied before: a WAL replay)."""
        if index <= self._consistent_index:
            return False
        self._consistent_index = index
        self._uncommitted_entries += 1
        return True

    def close_open_write(self) -> None:
        """Ends the write transaction a failed entry left open: its changes, if any, become a revision (the
        revision counter, the key index and the backend then agree, on every member alike)."""
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
            if txn.events:
                self._events.append((self._current_rev, txn.events))
        return self._current_rev

    def take_events(self) -> list[tuple[int, list[kv_pb2.Event]]]:
        """(revision, events) of every write applied since the last call, in revision order."""
        events, self._events = self._events, []
        return events

    def lease_exists(self, lease_id: int) -> bool:
        return self.lessor.exists(lease_id)

    def revoke_keys(self, keys: list[bytes]) -> int:
        """Deletes ``keys`` (a revoked lease's) in one revision; returns the store revision after it."""
        txn = self.begin_write()
        for key in keys:
            txn.delete_range(key, None)
        return self.end_write(txn)

    def put(self, request: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        """Applies a Put as one revision; raises EtcdError as etcd refuses it (lease not found, no key)."""
        if request.lease and not self.lease_exists(request.lease):
            raise errors.ERR_LEASE_NOT_FOUND
        txn = self.begin_write()
        response = txn.put_request(request)
        response.header.revision = self.end_write(txn)
        return response

    def delete_range(self, request: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        txn = self.begin_write()
        response = txn.delete_range_request(request)
        response.header.revision = self.end_write(txn)
        return response

    def txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """Applies a Txn (mvcc/txn.py): whole, as one revision if it writes, or not at all."""
        return apply_txn(self, request)

    def compact(self, request: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
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
        txn = self.batch
        if self._doomed:  # the previous compaction's deletions first, all of them
            self._delete_doomed(len(self._doomed))
        rows.put_meta_int(txn, meta.META_SCHEDULED_COMPACT, rev)
        keep = self.index.compact(rev)
        self._doomed = [
            k for k in txn.keys(KEY_DB, stop=backend_key(pack(rev, 0))) if parse_backend_key(k)[0] not in keep
        ]
        self._doomed.reverse()  # taken from the end, oldest first
        self._compact_rev = rev
        self._holds_compaction = True
        self.continue_compaction()

    @property
    def compaction_pending(self) -> bool:
        """Whether the last compaction still has rows to delete (in later batches: ``continue_compaction``).
        Its revision is refused to readers already; a restart before it finishes redoes it whole."""
        return bool(self._doomed)

    def continue_compaction(self) -> None:
        """Deletes the next ``compaction_batch_limit`` rows the last compaction doomed (inside ``apply_batch``);
        marks the compaction finished with the last of them."""
        limit = self.compaction_batch_limit
        self._delete_doomed(limit if limit > 0 else len(self._doomed))
        if not self._doomed:
            rows.put_meta_int(self.batch, meta.META_FINISHED_COMPACT, self._compact_rev)

    def _delete_doomed(self, count: int) -> None:
        txn, doomed = self.batch, self._doomed
        count = min(count, len(doomed))
        for _ in range(count):
            txn.delete(KEY_DB, doomed.pop())
        self.compacted_keys += count


class _ApplyBatch:
    """``KVStore.apply_batch``'s context: aborts the batch transaction on an exception (a class rather than a
    generator context manager: it is entered once per apply, on every write's path). It refers to its store
    weakly: no reference cycle, so a store the member froze from the cyclic collector (its boot store) is still
    freed by reference counting once a snapshot install replaces it."""

    __slots__ = ("_store",)

    def __init__(self, store: KVStore) -> None:
        self._store = weakref.ref(store)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._store().abort()

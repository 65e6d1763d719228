"""Read views and write transactions over the store (etcd's storeTxnRead / storeTxnWrite).

A ReadView reads at a fixed "current" revision. A WriteTxn is one revision in the making: all its
changes share main revision ``begin_rev + 1`` with sub revisions 0, 1, ...; reads through it see its
own earlier changes (the key index and the backend's write transaction are updated as it goes). ``txn`` is
the backend view they read through (tables.py): a read view, or the store's batch transaction for a WriteTxn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etcdx import errors
from etcdx._native import load
from etcdx.mvcc.gosort import go_sort
from etcdx.mvcc.revision import backend_key, pack
from etcdx.mvcc.schema import KEY_DB
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.mvccpb import kv_pb2

if TYPE_CHECKING:
    from etcdx.mvcc.kvstore import KVStore
    from etcdx.mvcc.tables import TableView, TableWriter

RangeRequest = rpc_pb2.RangeRequest

_PUT = kv_pb2.Event.PUT
encode_key_value = load("kvcodec").encode_key_value

_SORT_KEYS = {
    RangeRequest.KEY: lambda kv: kv.key,
    RangeRequest.VERSION: lambda kv: kv.version,
    RangeRequest.CREATE: lambda kv: kv.create_revision,
    RangeRequest.MOD: lambda kv: kv.mod_revision,
    RangeRequest.VALUE: lambda kv: kv.value,
}


def range_end(end: bytes) -> bytes | None:
    """A request's range_end in the key index's convention: None = single key, b"" = no upper bound."""
    if not end:
        return None
    if end == b"\x00":
        return b""
    return end


def key_in_range(key: bytes, start: bytes, end: bytes | None) -> bool:
    """Whether ``key`` is in [start, end) (``end`` in the key index's convention, see ``range_end``)."""
    if end is None:
        return key == start
    return start <= key and (not end or key < end)


class ReadView:
    def __init__(self, store: KVStore, txn: TableView, current_rev: int) -> None:
        self.store = store
        self.txn = txn
        self.current_rev = current_rev

    def kvs(self, key: bytes, end: bytes | None, rev: int = 0, limit: int = 0) -> tuple[list[kv_pb2.KeyValue], int]:
        """(key-ascending KeyValues, total count) in [key, end) at ``rev`` (0 = current); raises
        ERR_FUTURE_REV / ERR_COMPACTED as etcd's rangeKeys does (future checked first)."""
        pairs = self.store.index.range(key, end, self._resolve(rev))
        count = len(pairs)
        if limit > 0:
            pairs = pairs[:limit]
        if len(pairs) == 1:  # the common single-key read: one get
            return [self.store.read_kv(self.txn, pairs[0][1])], count
        stored = self.txn.get_many(KEY_DB, [backend_key(r) for _, r in pairs])
        if len(stored) != len(pairs):
            raise RuntimeError("mvcc: the key index names revisions the backend does not hold")
        parse = kv_pb2.KeyValue.FromString
        return [parse(kv) for kv in stored], count

    def range(self, r: rpc_pb2.RangeRequest, response: rpc_pb2.RangeResponse | None = None) -> rpc_pb2.RangeResponse:
        """etcd 3.5's Range: fetch (limit + 1 unless sorting or filtering), filter, sort, truncate. Fills and
        returns ``response`` (an empty one, such as a txn's op response: no copy afterwards) or a new one."""
        end = range_end(r.range_end)
        filtered = r.min_mod_revision or r.max_mod_revision or r.min_create_revision or r.max_create_revision
        limit = 0 if (r.sort_order != RangeRequest.NONE or filtered) else r.limit
        if limit > 0:
            limit += 1
        if response is None:
            response = rpc_pb2.RangeResponse()
        if r.count_only:
            response.count = self._count(r, end)
            response.header.revision = self.current_rev
            return response
        kvs, count = self.kvs(r.key, end, r.revision, limit)
        if r.max_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision <= r.max_mod_revision]
        if r.min_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision >= r.min_mod_revision]
        if r.max_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision <= r.max_create_revision]
        if r.min_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision >= r.min_create_revision]
        order = r.sort_order
        if r.sort_target != RangeRequest.KEY and order == RangeRequest.NONE:
            order = RangeRequest.ASCEND
        # An order that is neither ASCEND nor DESCEND leaves key order (verified against etcd 3.5.1;
        # it still fetches everything before truncating). An unknown target crashes etcd's handler;
        # etcdx leaves key order there too.
        sort_key = _SORT_KEYS.get(r.sort_target)
        if order in (RangeRequest.ASCEND, RangeRequest.DESCEND) and sort_key is not None:
            go_sort(kvs, [sort_key(kv) for kv in kvs], descending=order == RangeRequest.DESCEND)
        if r.limit > 0 and len(kvs) > r.limit:
            del kvs[r.limit :]
            response.more = True
        if r.keys_only:
            for kv in kvs:
                kv.ClearField("value")
        response.kvs.extend(kvs)
        response.count = count
        response.header.revision = self.current_rev
        return response

    def _count(self, r: rpc_pb2.RangeRequest, end: bytes | None) -> int:
        return self.store.index.count(r.key, end, self._resolve(r.revision))

    def _resolve(self, rev: int) -> int:
        """The revision a read at ``rev`` sees (0 or less = current); etcd's checks, future first."""
        if rev > self.current_rev:
            raise errors.ERR_FUTURE_REV
        if rev <= 0:
            rev = self.current_rev
        if rev < self.store.compact_revision:
            raise errors.ERR_COMPACTED
        return rev


class WriteTxn(ReadView):
    txn: TableWriter

    def __init__(self, store: KVStore, txn: TableWriter, begin_rev: int) -> None:
        # ReadView's fields set here rather than through super().__init__: one write transaction per write.
        self.store = store
        self.txn = txn
        self.current_rev = begin_rev
        self.begin_rev = begin_rev
        self.changes = 0
        self.events: list[kv_pb2.Event] = []  # what watchers see of this txn, in change order (if store.keep_events)

    def _touch(self) -> int:
        """The packed revision of the next change; reads from now on see this txn's revision."""
        rev = pack(self.begin_rev + 1, self.changes)
        self.changes += 1
        self.current_rev = self.begin_rev + 1
        return rev

    def put(self, key: bytes, value: bytes, lease: int) -> int:
        main = self.begin_rev + 1
        rev = pack(main, self.changes)  # _touch, inline: the hottest write
        self.changes += 1
        self.current_rev = main
        store = self.store
        created, version = store.index.put(key, rev)
        if store.keep_events:
            # The KeyValue is built in place inside its watch event (no copy of it into the event).
            event = kv_pb2.Event(type=_PUT)
            kv = event.kv
            kv.key = key
            kv.create_revision = created
            kv.mod_revision = main
            kv.version = version
            kv.value = value
            kv.lease = lease
            self.events.append(event)
        # The stored bytes are that KeyValue's serialization, written without building one (kvcodec).
        self.txn.put(KEY_DB, backend_key(rev), encode_key_value(key, created, main, version, value, lease))
        store.lessor.on_put(key, lease)
        return main

    def delete_range(self, key: bytes, end: bytes | None) -> int:
        keys = self.store.index.live_keys(key, end)
        for k in keys:
            rev = self._touch()
            self.store.index.tombstone(k, rev)
            self.txn.put(KEY_DB, backend_key(rev, tombstone=True), kv_pb2.KeyValue(key=k).SerializeToString())
            self.store.lessor.on_delete(k)
            if self.store.keep_events:
                deleted = kv_pb2.KeyValue(key=k, mod_revision=self.begin_rev + 1)
                self.events.append(kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=deleted))
        return len(keys)

    def put_request(self, p: rpc_pb2.PutRequest, response: rpc_pb2.PutResponse | None = None) -> rpc_pb2.PutResponse:
        """etcd's applierV3backend.Put inside this txn (the lease was checked by the caller), answered into
        ``response`` (an empty PutResponse, such as a TxnResponse's op response) or a new one; returns it."""
        if response is None:
            response = rpc_pb2.PutResponse()
        value, lease = p.value, p.lease
        previous = None
        if p.ignore_value or p.ignore_lease or p.prev_kv:
            found, _ = self.kvs(p.key, None)
            previous = found[0] if found else None
        if p.ignore_value or p.ignore_lease:
            if previous is None:
                raise errors.ERR_KEY_NOT_FOUND
            if p.ignore_value:
                value = previous.value
            if p.ignore_lease:
                lease = previous.lease
        if p.prev_kv and previous is not None:
            response.prev_kv.CopyFrom(previous)
        response.header.revision = self.put(p.key, value, lease)
        return response

    def delete_range_request(self, d: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        response = rpc_pb2.DeleteRangeResponse()
        end = range_end(d.range_end)
        if d.prev_kv:
            found, _ = self.kvs(d.key, end)
            response.prev_kvs.extend(found)
        response.deleted = self.delete_range(d.key, end)
        response.header.revision = self.begin_rev + 1 if self.changes else self.begin_rev
        return response

"""Txn application with etcd 3.5's order of events (pure logic over a WriteTxn).

1. Every compare, at every nesting level of the chosen branches, is evaluated against the state
   before the txn (the "txn path": one bool per txn, pre-order).
2. Checks against that same state, before anything is written: puts first (ignore_value /
   ignore_lease need the key; the lease must exist) unless the txn cannot write, then ranges
   (revision future or compacted). Any failure fails the whole txn.
3. The chosen ops run in order; reads see the txn's earlier writes; one revision for all changes.

Invariant: once step 3 starts nothing can fail, so a txn is applied whole or not at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etcdx import errors
from etcdx.mvcc.compare import compare_number, compare_range
from etcdx.mvcc.revision import main_of
from etcdx.mvcc.write_txn import ReadView, WriteTxn, key_in_range, range_end
from etcdx.pb.etcdserverpb import rpc_pb2

if TYPE_CHECKING:
    from etcdx.mvcc.kvstore import KVStore


def apply_txn(store: KVStore, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
    txn = store.begin_write()
    succeeded = all(_compare_holds(txn, c) for c in request.compare)
    ops = request.success if succeeded else request.failure
    kinds = [op.WhichOneof("request") for op in ops]
    path = [succeeded]
    if "request_txn" in kinds:  # nested: every level's compares first, then the ops of the chosen branches
        for op, kind in zip(ops, kinds, strict=True):
            if kind == "request_txn":
                _compare_path(txn, op.request_txn, path)
        ops = chosen_ops(request, path)
        kinds = [op.WhichOneof("request") for op in ops]
    # etcd's order of refusals: every put's own check (in op order), then a put that ignores the value or lease
    # of a key an earlier op deletes, then every range's revision. (Only puts and ranges have checks, so a txn
    # whose chosen ops are reads passes the put checks, whatever its other branch holds.)
    ignoring = False
    ranges = False
    for op, kind in zip(ops, kinds, strict=True):
        if kind == "request_put":
            ignoring = _check_put(store, txn, op.request_put) or ignoring
        elif kind == "request_range":
            ranges = True
    if ignoring:
        _check_puts_keep_their_keys(store, ops)
    if ranges:
        for op, kind in zip(ops, kinds, strict=True):
            if kind == "request_range":
                _check_range(store, txn, op.request_range)
    response = rpc_pb2.TxnResponse()
    _execute(txn, request, path, 0, response)
    response.header.revision = store.end_write(txn)
    return response


def read_txn(store: KVStore, view: ReadView, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
    """A read-only txn (``is_read_only``) answered from ``view`` without a write: the same response
    ``apply_txn`` gives for it at the view's revision (the revision in the header)."""
    path: list[bool] = []
    _compare_path(view, request, path)
    for op in chosen_ops(request, path):
        if op.WhichOneof("request") == "request_range":
            _check_range(store, view, op.request_range)
    response = rpc_pb2.TxnResponse()
    _execute(view, request, path, 0, response)
    response.header.revision = view.current_rev
    return response


def is_read_only(request: rpc_pb2.TxnRequest) -> bool:
    """True when no op in either branch, at any depth, is a put or a delete."""
    for op in (*request.success, *request.failure):
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return False
        if kind == "request_txn" and not is_read_only(op.request_txn):
            return False
    return True


Compare = rpc_pb2.Compare

# Compare targets the key index answers (the position in KeyIndex.get's (revision, create, version)).
_INDEXED_TARGETS = {Compare.MOD: 0, Compare.CREATE: 1, Compare.VERSION: 2}


def _compare_holds(view: ReadView, c: rpc_pb2.Compare) -> bool:
    """One compare against the view's state. A single key's VERSION, CREATE or MOD (Kubernetes' updates compare
    mod_revision) is answered from the key index, without reading and parsing the stored KeyValue; the same
    answer, as the index holds those numbers of every stored KeyValue."""
    position = _INDEXED_TARGETS.get(c.target)
    if position is None or c.range_end:
        return compare_range(c, view.kvs(c.key, range_end(c.range_end))[0])
    found = view.store.index.get(c.key, view.current_rev)
    if found is None:
        return compare_number(c, 0)
    return compare_number(c, main_of(found[0]) if position == 0 else found[position])


def _compare_path(view: ReadView, request: rpc_pb2.TxnRequest, path: list[bool]) -> None:
    succeeded = all(_compare_holds(view, c) for c in request.compare)
    path.append(succeeded)
    for op in request.success if succeeded else request.failure:
        if op.WhichOneof("request") == "request_txn":
            _compare_path(view, op.request_txn, path)


def chosen_ops(request: rpc_pb2.TxnRequest, path: list[bool]) -> list[rpc_pb2.RequestOp]:
    """The non-txn ops the txn runs, in execution order (the branch ``path`` chose at every level)."""
    ops: list[rpc_pb2.RequestOp] = []

    def visit(r: rpc_pb2.TxnRequest, pos: int) -> int:
        pos_after = pos + 1
        for op in r.success if path[pos] else r.failure:
            if op.WhichOneof("request") == "request_txn":
                pos_after = visit(op.request_txn, pos_after)
            else:
                ops.append(op)
        return pos_after

    visit(request, 0)
    return ops


def _check_put(store: KVStore, view: WriteTxn, put: rpc_pb2.PutRequest) -> bool:
    """A put's own check; returns whether it ignores the value or the lease (it needs its key)."""
    ignoring = put.ignore_value or put.ignore_lease
    if ignoring and not view.kvs(put.key, None)[0]:
        raise errors.ERR_KEY_NOT_FOUND
    if put.lease and not store.lease_exists(put.lease):
        raise errors.ERR_LEASE_NOT_FOUND
    return ignoring


def _check_range(store: KVStore, view: ReadView, r: rpc_pb2.RangeRequest) -> None:
    """A range's own check in a txn: the revision it reads at exists."""
    rev = r.revision
    if rev == 0:
        return
    if rev > view.current_rev:
        raise errors.ERR_FUTURE_REV
    if rev < store.compact_revision:
        raise errors.ERR_COMPACTED


def _check_puts_keep_their_keys(store: KVStore, ops: list[rpc_pb2.RequestOp]) -> None:
    """Fails with ERR_KEY_NOT_FOUND a put with ignore_value / ignore_lease whose key an earlier op of
    the same txn deletes. The duplicate-key check misses this when the delete's range_end is b"\\0"
    (it takes that end literally); etcd 3.5.1 then panics mid-txn, on every member and again on
    every replay (verified against etcd 3.5.1). etcdx refuses the txn before writing anything.
    Needed only when some put of ``ops`` ignores its value or lease (the caller checks)."""
    deleted: set[bytes] = set()
    written: set[bytes] = set()
    for op in ops:
        kind = op.WhichOneof("request")
        if kind == "request_delete_range":
            d = op.request_delete_range
            end = range_end(d.range_end)
            gone = set(store.index.live_keys(d.key, end))
            gone.update(k for k in written if key_in_range(k, d.key, end))
            deleted |= gone
            written -= gone
        elif kind == "request_put":
            put = op.request_put
            if (put.ignore_value or put.ignore_lease) and put.key in deleted:
                raise errors.ERR_KEY_NOT_FOUND
            written.add(put.key)
            deleted.discard(put.key)


def _execute(txn: ReadView, request: rpc_pb2.TxnRequest, path: list[bool], pos: int, response) -> int:
    """Runs the chosen ops into ``response``; a read-only txn's ops need only a ReadView."""
    succeeded = path[pos]
    response.succeeded = succeeded
    pos += 1
    for op in request.success if succeeded else request.failure:
        kind = op.WhichOneof("request")
        out = response.responses.add()
        if kind == "request_range":
            txn.range(op.request_range, out.response_range)
        elif kind == "request_put":
            txn.put_request(op.request_put, out.response_put)
        elif kind == "request_delete_range":
            out.response_delete_range.CopyFrom(txn.delete_range_request(op.request_delete_range))
        elif kind == "request_txn":
            nested = out.response_txn
            nested.header.SetInParent()  # etcd sends an empty header on nested txn responses
            pos = _execute(txn, op.request_txn, path, pos, nested)
    return pos

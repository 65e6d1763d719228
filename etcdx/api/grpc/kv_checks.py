"""Request validation etcd's KV API layer does before proposing (pure; raises shared EtcdErrors).

Beyond etcd's checks, two refusals where etcd 3.5.1 has no answer of its own (InvalidArgument, etcdx's text):
- a sort that etcd cannot perform (an unknown sort target with order NONE, ASCEND or DESCEND: etcd's
  handler, or its apply inside a txn, dereferences a nil sorter and the member dies);
- a txn nested deeper than MAX_TXN_DEPTH, which the log entry carrying it could not be parsed back from
  (protobuf's decoder stops at 100 message levels; the entry adds levels above the request's).
"""

from __future__ import annotations

from typing import NamedTuple

from etcdx import errors
from etcdx._native import load
from etcdx.errors import EtcdError, StatusCode
from etcdx.mvcc.txn import is_read_only
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.server import quota

txnscan = load("txnscan")

RangeRequest = rpc_pb2.RangeRequest
SORT_TARGETS = frozenset(RangeRequest.SortTarget.values())
SORTING_ORDERS = frozenset({RangeRequest.NONE, RangeRequest.ASCEND, RangeRequest.DESCEND})
MAX_TXN_DEPTH = 32  # a top-level txn and 31 levels of txns nested in it
ERR_TXN_TOO_DEEP = errors.etcd_error(
    StatusCode.INVALID_ARGUMENT, f"etcdserver: txn nested more than {MAX_TXN_DEPTH} levels deep"
)


def check_range(r: rpc_pb2.RangeRequest) -> None:
    if not r.key:
        raise errors.ERR_EMPTY_KEY
    if r.sort_target not in SORT_TARGETS and r.sort_order in SORTING_ORDERS:
        raise EtcdError(StatusCode.INVALID_ARGUMENT, f"etcdserver: unknown sort target {r.sort_target}")


def check_put(r: rpc_pb2.PutRequest) -> None:
    _check_put_fields(r, r.key, r.value)


def _check_put_fields(r: rpc_pb2.PutRequest, key: bytes, value: bytes) -> None:
    """``check_put`` of ``r`` whose key and value the caller read already (reading a bytes field copies it)."""
    if not key:
        raise errors.ERR_EMPTY_KEY
    if r.ignore_value and value:
        raise errors.ERR_VALUE_PROVIDED
    if r.ignore_lease and r.lease:
        raise errors.ERR_LEASE_PROVIDED


def check_delete_range(r: rpc_pb2.DeleteRangeRequest) -> None:
    if not r.key:
        raise errors.ERR_EMPTY_KEY


def check_txn(r: rpc_pb2.TxnRequest, max_txn_ops: int) -> None:
    """Op counts, empty keys and empty ops at every level, then duplicate keys in each branch."""
    _check_txn_ops(r, max_txn_ops, 1)
    _puts_and_deletes(r.success)
    _puts_and_deletes(r.failure)


class TxnOutline(NamedTuple):
    """What the API layer needs of a txn before it serves or proposes it: whether it is read-only
    (mvcc.txn.is_read_only), its quota cost (quota.txn_cost; 0 for a read-only one), and the error its check
    raises (check_txn, or check_read_only_txn for a read-only one), None if it passes. The caller raises
    ``error`` where etcd checks: a write's after its quota check."""

    read_only: bool
    cost: int
    error: EtcdError | None


def outline_txn(r: rpc_pb2.TxnRequest, max_txn_ops: int) -> TxnOutline:
    """The TxnOutline of ``r``: in one walk of its ops for a txn with no txn nested in it (Kubernetes' updates,
    most txns), else from the functions named in TxnOutline. The same outline either way."""
    flat = _outline_flat(r, max_txn_ops)
    if flat is not None:
        return flat
    read_only = is_read_only(r)
    error: EtcdError | None = None
    try:
        (check_read_only_txn if read_only else check_txn)(r, max_txn_ops)
    except EtcdError as exc:
        error = exc
    return TxnOutline(read_only, 0 if read_only else quota.txn_cost(r), error)


_SCAN_ERRORS = {
    txnscan.ERR_TOO_MANY_OPS: errors.ERR_TOO_MANY_OPS,
    txnscan.ERR_EMPTY_KEY: errors.ERR_EMPTY_KEY,
    txnscan.ERR_VALUE_PROVIDED: errors.ERR_VALUE_PROVIDED,
    txnscan.ERR_LEASE_PROVIDED: errors.ERR_LEASE_PROVIDED,
    txnscan.ERR_KEY_NOT_FOUND: errors.ERR_KEY_NOT_FOUND,
    txnscan.ERR_DUPLICATE_KEY: errors.ERR_DUPLICATE_KEY,
}


def outline_txn_bytes(data: bytes, request: rpc_pb2.TxnRequest, max_txn_ops: int) -> TxnOutline:
    """``outline_txn(request, max_txn_ops)`` for ``request`` parsed from ``data``: read from the bytes by the txnscan
    module for a plain txn (no nested txn nor unknown field: see etcdx/_native/txnscan_py.py), without building
    protobuf objects; from ``request`` for any other."""
    scanned = txnscan.scan(data, max_txn_ops, quota.KV_OVERHEAD)
    if scanned is None:
        return outline_txn(request, max_txn_ops)
    read_only, cost, code = scanned
    return TxnOutline(read_only, cost, _SCAN_ERRORS[code]() if code else None)


def _outline_flat(r: rpc_pb2.TxnRequest, max_txn_ops: int) -> TxnOutline | None:
    """``outline_txn`` in one walk for a txn without a nested txn; None for one with (found on the way). The
    first error in check_txn's order: the op count, empty compare keys, each op's own check (success, then
    failure), then a key put twice in a branch or put into a range the branch deletes. A put's key and value are
    read once, for its cost and its check (reading a bytes field copies it); tests/unit/test_kv_checks.py holds
    this walk to the separate checks."""
    compare, success, failure = r.compare, r.success, r.failure
    error: EtcdError | None = None
    if len(compare) > max_txn_ops or len(success) > max_txn_ops or len(failure) > max_txn_ops:
        error = errors.ERR_TOO_MANY_OPS()
    else:
        for c in compare:
            if not c.key:
                error = errors.ERR_EMPTY_KEY()
                break
    read_only, cost, duplicate = True, 0, False
    for branch in (success, failure):
        if not branch:
            continue
        branch_cost = 0
        puts: list[bytes] = []
        deletes: list[tuple[bytes, bytes]] = []
        for op in branch:
            kind = op.WhichOneof("request")
            try:
                if kind == "request_put":
                    put = op.request_put
                    key, value = put.key, put.value
                    read_only = False
                    branch_cost += quota.kv_cost(key, value)
                    puts.append(key)
                    if error is None:
                        _check_put_fields(put, key, value)
                elif kind == "request_range":
                    if error is None:
                        check_range(op.request_range)
                elif kind == "request_delete_range":
                    delete = op.request_delete_range
                    read_only = False
                    deletes.append(_deleted(delete))
                    if error is None:
                        check_delete_range(delete)
                elif kind == "request_txn":
                    return None
                elif error is None:
                    raise errors.ERR_KEY_NOT_FOUND
            except EtcdError as exc:
                error = exc
        cost = max(cost, branch_cost)
        # Only while no error is found: then every branch holds at most max_txn_ops ops, so the pairwise scan
        # is bounded (a txn over the op limit is walked whole for its quota cost, but never scanned pairwise).
        if puts and not duplicate and error is None and (len(puts) > 1 or deletes):
            duplicate = len(set(puts)) < len(puts) or any(
                _intersects(_point(key), interval) for key in puts for interval in deletes
            )
    if error is None and duplicate:
        error = errors.ERR_DUPLICATE_KEY()
    return TxnOutline(read_only, 0 if read_only else cost, error)


def check_read_only_txn(r: rpc_pb2.TxnRequest, max_txn_ops: int) -> None:
    """``check_txn`` for a txn without puts or deletes at any level, which cannot have duplicate keys."""
    _check_txn_ops(r, max_txn_ops, 1)


def _check_txn_ops(r: rpc_pb2.TxnRequest, max_txn_ops: int, depth: int) -> None:
    if depth > MAX_TXN_DEPTH:
        raise ERR_TXN_TOO_DEEP
    ops = max(len(r.compare), len(r.success), len(r.failure))
    if ops > max_txn_ops:
        raise errors.ERR_TOO_MANY_OPS
    for c in r.compare:
        if not c.key:
            raise errors.ERR_EMPTY_KEY
    # A nested txn may use what its parent left of the budget (etcd passes maxTxnOps - ops down).
    for op in (*r.success, *r.failure):
        _check_op(op, max_txn_ops - ops, depth)


def _check_op(op: rpc_pb2.RequestOp, max_txn_ops: int, depth: int) -> None:
    kind = op.WhichOneof("request")
    if kind == "request_range":
        check_range(op.request_range)
    elif kind == "request_put":
        check_put(op.request_put)
    elif kind == "request_delete_range":
        check_delete_range(op.request_delete_range)
    elif kind == "request_txn":
        _check_txn_ops(op.request_txn, max_txn_ops, depth + 1)
    else:
        raise errors.ERR_KEY_NOT_FOUND


# Intervals are [begin, end) over byte strings where an empty end is +infinity ("affine"); a point
# key k is [k, k + b"\0"). A delete whose range_end sorts before its key is an empty interval.
_INFINITY = b""


def _before(a: bytes, b: bytes) -> bool:
    """a < b where the empty string is +infinity."""
    if a == _INFINITY:
        return False
    return b == _INFINITY or a < b


def _intersects(interval: tuple[bytes, bytes], other: tuple[bytes, bytes]) -> bool:
    return _before(interval[0], other[1]) and _before(other[0], interval[1])


def _point(key: bytes) -> tuple[bytes, bytes]:
    return key, key + b"\0"


def _deleted(d: rpc_pb2.DeleteRangeRequest) -> tuple[bytes, bytes]:
    """The interval a delete removes."""
    return (d.key, d.range_end) if d.range_end else _point(d.key)


_NESTED_FILTER = (b"\0", _INFINITY)


def _puts_and_deletes(ops) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    """Keys put and intervals deleted by ``ops`` and the txns nested in them; raises
    ERR_DUPLICATE_KEY when one branch level puts a key twice or puts into a range it deletes
    (the two branches of one nested txn may put the same key: only one of them runs)."""
    deletes: list[tuple[bytes, bytes]] = []
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            deletes.append(_deleted(op.request_delete_range))

    def check_put(key: bytes, puts: set[bytes]) -> None:
        if key in puts or any(_intersects(_point(key), iv) for iv in deletes):
            raise errors.ERR_DUPLICATE_KEY
        puts.add(key)

    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        puts_then, deletes_then = _puts_and_deletes(op.request_txn.success)
        puts_else, deletes_else = _puts_and_deletes(op.request_txn.failure)
        for key in puts_then:
            check_put(key, puts)
        for key in puts_else:
            if key in puts and key in puts_then:
                puts.discard(key)
            check_put(key, puts)
        deletes.extend(iv for iv in (*deletes_then, *deletes_else) if _intersects(iv, _NESTED_FILTER))
    for op in ops:
        if op.WhichOneof("request") == "request_put":
            check_put(op.request_put.key, puts)
    return puts, deletes

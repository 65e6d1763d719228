"""Request validation etcd's KV API layer does before proposing (pure; raises shared EtcdErrors).

Beyond etcd's checks, two refusals where etcd 3.5.1 has no answer of its own (InvalidArgument, etcdx's text):
- a sort that etcd cannot perform (an unknown sort target with order NONE, ASCEND or DESCEND: etcd's
  handler, or its apply inside a txn, dereferences a nil sorter and the member dies);
- a txn nested deeper than MAX_TXN_DEPTH, which the log entry carrying it could not be parsed back from
  (protobuf's decoder stops at 100 message levels; the entry adds levels above the request's).
"""

from __future__ import annotations

from etcdx import errors
from etcdx.errors import EtcdError, StatusCode
from etcdx.pb.etcdserverpb import rpc_pb2

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
    if not r.key:
        raise errors.ERR_EMPTY_KEY
    if r.ignore_value and r.value:
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


_NESTED_FILTER = (b"\0", _INFINITY)


def _puts_and_deletes(ops) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    """Keys put and intervals deleted by ``ops`` and the txns nested in them; raises
    ERR_DUPLICATE_KEY when one branch level puts a key twice or puts into a range it deletes
    (the two branches of one nested txn may put the same key: only one of them runs)."""
    deletes: list[tuple[bytes, bytes]] = []
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            d = op.request_delete_range
            deletes.append((d.key, d.range_end) if d.range_end else _point(d.key))

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

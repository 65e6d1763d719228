"""KV request checks of the API layer. Every expected outcome here was read from etcd 3.5.1 for the
same request (Txn cases with --max-txn-ops=4, which MAX_OPS mirrors)."""

from __future__ import annotations

import pytest

from etcdx import errors
from etcdx.api.grpc import kv_checks
from etcdx.pb.etcdserverpb import rpc_pb2 as pb

MAX_OPS = 4


def put(key: bytes, **options) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, **options))


def get(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_range=pb.RangeRequest(key=key))


def delete(key: bytes, range_end: bytes = b"") -> pb.RequestOp:
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=range_end))


def nested(success=(), failure=(), compare=()) -> pb.RequestOp:
    return pb.RequestOp(request_txn=txn(success, failure, compare))


def txn(success=(), failure=(), compare=()) -> pb.TxnRequest:
    return pb.TxnRequest(compare=list(compare), success=list(success), failure=list(failure))


def outcome(check, request, *args) -> type[errors.EtcdError] | None:
    try:
        check(request, *args)
    except errors.EtcdError as exc:
        return type(exc)
    return None


@pytest.mark.parametrize(
    "check, request_, expected",
    [
        (kv_checks.check_range, pb.RangeRequest(key=b""), errors.ERR_EMPTY_KEY),
        (kv_checks.check_range, pb.RangeRequest(key=b"a", range_end=b"\0"), None),
        (kv_checks.check_delete_range, pb.DeleteRangeRequest(key=b""), errors.ERR_EMPTY_KEY),
        (kv_checks.check_delete_range, pb.DeleteRangeRequest(key=b"a"), None),
        (kv_checks.check_put, pb.PutRequest(key=b""), errors.ERR_EMPTY_KEY),
        (kv_checks.check_put, pb.PutRequest(key=b"a", ignore_value=True), None),
        (kv_checks.check_put, pb.PutRequest(key=b"a", value=b"v", ignore_value=True), errors.ERR_VALUE_PROVIDED),
        (kv_checks.check_put, pb.PutRequest(key=b"a", lease=5, ignore_lease=True), errors.ERR_LEASE_PROVIDED),
        # first failing check wins: empty key, then value, then lease
        (kv_checks.check_put, pb.PutRequest(key=b"", value=b"v", ignore_value=True), errors.ERR_EMPTY_KEY),
        (
            kv_checks.check_put,
            pb.PutRequest(key=b"a", value=b"v", ignore_value=True, lease=5, ignore_lease=True),
            errors.ERR_VALUE_PROVIDED,
        ),
    ],
)
def test_single_request_checks(check, request_, expected):
    assert outcome(check, request_) is expected


TXN_CASES = {
    # op budget: the widest of compare / success / failure; a nested txn gets what its parent left
    "four ops": (txn(success=[get(b"a")] * 4), None),
    "too many failure ops": (txn(failure=[get(b"a")] * 5), errors.ERR_TOO_MANY_OPS),
    "too many compares": (txn(compare=[pb.Compare(key=b"a")] * 5), errors.ERR_TOO_MANY_OPS),
    "nested within budget": (txn(success=[nested(success=[get(b"a")] * 3)]), None),
    "nested over budget": (txn(success=[nested(success=[get(b"a")] * 4)]), errors.ERR_TOO_MANY_OPS),
    "budget shrinks per level": (
        txn(success=[get(b"a"), get(b"a"), nested(success=[nested(success=[get(b"a")])])]),
        errors.ERR_TOO_MANY_OPS,
    ),
    # empty keys and empty ops, at any depth
    "empty compare key in nested txn": (txn(success=[nested(compare=[pb.Compare(key=b"")])]), errors.ERR_EMPTY_KEY),
    "empty op in nested txn": (txn(success=[nested(failure=[pb.RequestOp()])]), errors.ERR_KEY_NOT_FOUND),
    "value provided in nested put": (
        txn(success=[nested(success=[put(b"a", value=b"v", ignore_value=True)])]),
        errors.ERR_VALUE_PROVIDED,
    ),
    # which error wins: op count, then compares, then ops in order, and duplicates only after all that
    "too many beats empty compare key": (
        txn(compare=[pb.Compare(key=b"")], success=[get(b"a")] * 5),
        errors.ERR_TOO_MANY_OPS,
    ),
    "empty key beats duplicate": (txn(success=[put(b"d"), put(b"d"), get(b"")]), errors.ERR_EMPTY_KEY),
    "empty key in failure beats duplicate in success": (
        txn(success=[put(b"a"), put(b"a")], failure=[get(b"")]),
        errors.ERR_EMPTY_KEY,
    ),
    "value provided beats duplicate": (
        txn(success=[put(b"a"), put(b"a"), put(b"b", value=b"v", ignore_value=True)]),
        errors.ERR_VALUE_PROVIDED,
    ),
    # duplicate keys
    "same key twice in failure": (txn(failure=[put(b"k"), put(b"k")]), errors.ERR_DUPLICATE_KEY),
    "same key in the two branches of a nested txn": (
        txn(success=[nested(success=[put(b"k")], failure=[put(b"k")])]),
        None,
    ),
    "nested then-put and parent put": (txn(success=[nested(success=[put(b"k")]), put(b"k")]), errors.ERR_DUPLICATE_KEY),
    "nested else-put and parent put": (txn(success=[nested(failure=[put(b"k")]), put(b"k")]), errors.ERR_DUPLICATE_KEY),
    "two nested txns put one key": (
        txn(success=[nested(success=[put(b"k")]), nested(failure=[put(b"k")])]),
        errors.ERR_DUPLICATE_KEY,
    ),
    "put inside a deleted range": (txn(success=[delete(b"a", b"c"), put(b"b")]), errors.ERR_DUPLICATE_KEY),
    "put before the deleted range covering it": (
        txn(success=[put(b"b"), delete(b"a", b"c")]),
        errors.ERR_DUPLICATE_KEY,
    ),
    "put at the excluded range end": (txn(success=[delete(b"a", b"c"), put(b"c")]), None),
    "deleted point and nested put": (
        txn(success=[delete(b"k"), nested(success=[put(b"k")])]),
        errors.ERR_DUPLICATE_KEY,
    ),
    "nested delete and parent put": (
        txn(success=[nested(failure=[delete(b"a", b"c")]), put(b"b")]),
        errors.ERR_DUPLICATE_KEY,
    ),
    "nested delete and later sibling put": (
        txn(success=[nested(success=[delete(b"a", b"c")]), nested(success=[put(b"b")])]),
        errors.ERR_DUPLICATE_KEY,
    ),
    "nested put and later sibling delete": (
        txn(success=[nested(success=[put(b"b")]), nested(success=[delete(b"a", b"c")])]),
        None,
    ),
    "delete and put in different branches": (txn(success=[delete(b"a", b"c")], failure=[put(b"b")]), None),
    "the same key deleted twice": (txn(success=[delete(b"k"), delete(b"k")]), None),
    # range_end b"\0" is taken literally here (an empty interval), so these pass the check
    "put after a from-key delete": (txn(success=[delete(b"a", b"\0"), put(b"b")]), None),
    "put after a whole-keyspace delete": (txn(success=[delete(b"\0", b"\0"), put(b"b")]), None),
    "put inside an inverted delete range": (txn(success=[delete(b"c", b"a"), put(b"b")]), None),
}


@pytest.mark.parametrize("name", list(TXN_CASES))
def test_txn_checks(name):
    request, expected = TXN_CASES[name]
    assert outcome(kv_checks.check_txn, request, MAX_OPS) is expected


# -- refusals where etcd 3.5.1 has no answer (its handler or apply dies): etcdx's InvalidArgument ----------

RR = pb.RangeRequest


@pytest.mark.parametrize(
    ("order", "target", "refused"),
    [
        (RR.NONE, 9, True),  # NONE with a target other than KEY sorts ascending in etcd: nil sorter
        (RR.ASCEND, -1, True),
        (RR.DESCEND, 5, True),
        (7, 9, False),  # an unknown order sorts nothing, so etcd answers in key order
        (RR.DESCEND, RR.VALUE, False),
    ],
)
def test_a_sort_etcd_cannot_perform_is_refused(order, target, refused):
    request = pb.RangeRequest(key=b"a", sort_order=order, sort_target=target)
    try:
        kv_checks.check_range(request)
        in_range = None
    except errors.EtcdError as exc:
        in_range = exc
    in_txn = outcome(kv_checks.check_read_only_txn, txn([nested([pb.RequestOp(request_range=request)])]), MAX_OPS)
    assert (in_range is not None, in_txn is not None) == (refused, refused)
    if refused:
        assert (in_range.code, in_range.message) == (
            errors.StatusCode.INVALID_ARGUMENT,
            f"etcdserver: unknown sort target {target}",
        )


def deep(levels: int, leaf: pb.RequestOp) -> pb.TxnRequest:
    """``levels`` txns in all, each the only op of its parent's success branch, ``leaf`` at the bottom."""
    top = pb.TxnRequest()
    inner = top
    for _ in range(levels - 1):
        inner = inner.success.add().request_txn
    inner.success.add().CopyFrom(leaf)
    return top


@pytest.mark.parametrize("check", [kv_checks.check_txn, kv_checks.check_read_only_txn])
def test_txns_nest_up_to_the_limit_and_no_deeper(check):
    limit = kv_checks.MAX_TXN_DEPTH
    leaf = put(b"deep") if check is kv_checks.check_txn else get(b"deep")
    max_ops = 128  # etcd's default: each level spends one op of its parent's budget
    assert outcome(check, deep(limit, leaf), max_ops) is None
    assert outcome(check, deep(limit + 1, leaf), max_ops) is kv_checks.ERR_TXN_TOO_DEEP


def _general_outline(r: pb.TxnRequest) -> tuple:
    """What outline_txn must give, from the functions it stands for."""
    from etcdx.mvcc.txn import is_read_only
    from etcdx.server import quota

    read_only = is_read_only(r)
    check = kv_checks.check_read_only_txn if read_only else kv_checks.check_txn
    try:
        check(r, MAX_OPS)
        error = None
    except errors.EtcdError as exc:
        error = _error(exc)
    return read_only, 0 if read_only else quota.txn_cost(r), error


def _error(exc: errors.EtcdError) -> tuple:
    return type(exc), exc.code, exc.message


def _random_txn(rng, depth: int = 0) -> pb.TxnRequest:
    keys = [b"", b"a", b"b", b"c"]
    r = pb.TxnRequest()
    for _ in range(rng.choice([0, 0, 1, 2, 5])):
        r.compare.add(key=rng.choice(keys), target=pb.Compare.MOD, mod_revision=1)
    for branch in (r.success, r.failure):
        for _ in range(rng.choice([0, 1, 2, 3, 5])):
            op = branch.add()
            kind = rng.random()
            if kind < 0.35:
                op.request_put.key = rng.choice(keys)
                op.request_put.value = b"v" * rng.randrange(3)
                op.request_put.ignore_value = rng.random() < 0.1
                op.request_put.lease = rng.choice([0, 0, 0, 7])
                op.request_put.ignore_lease = rng.random() < 0.1
            elif kind < 0.6:
                op.request_range.key = rng.choice(keys)
                op.request_range.sort_target = rng.choice([0, 0, 0, 9])
            elif kind < 0.8:
                op.request_delete_range.key = rng.choice(keys)
                op.request_delete_range.range_end = rng.choice([b"", b"", b"b", b"\0"])
            elif kind < 0.9 and depth < 2:
                op.request_txn.CopyFrom(_random_txn(rng, depth + 1))
            # else: an op with no request set
    return r


def test_the_txn_outline_is_what_the_separate_checks_give():
    """outline_txn (one walk for a flat txn) against is_read_only, quota.txn_cost and check_txn /
    check_read_only_txn, over random txns: flat and nested, valid and refused for every reason (too many ops,
    empty keys, unset ops, bad sort targets, ignore_value/ignore_lease with a value/lease, duplicates)."""
    import random

    rng = random.Random(3)
    flat = refused = 0
    for _ in range(5000):
        r = _random_txn(rng)
        outline = kv_checks.outline_txn(r, MAX_OPS)
        got = outline.read_only, outline.cost, None if outline.error is None else _error(outline.error)
        assert got == _general_outline(r), r
        refused += outline.error is not None
        flat += kv_checks._outline_flat(r, MAX_OPS) is not None
    assert flat > 2000 and refused > 1000  # both paths and many refusals were exercised


def test_a_txn_over_the_op_limit_is_not_scanned_pairwise(monkeypatch):
    """A txn far over --max-txn-ops is walked once for its quota cost, but its puts are not checked against its
    deletes pair by pair (quadratic: a 2 MiB request would hold the member for minutes)."""
    calls = 0
    real = kv_checks._intersects

    def counting(a, b):
        nonlocal calls
        calls += 1
        return real(a, b)

    monkeypatch.setattr(kv_checks, "_intersects", counting)
    ops = [put(b"p%04d" % n) for n in range(2000)] + [delete(b"d%04d" % n) for n in range(2000)]
    outline = kv_checks.outline_txn(txn(success=ops), MAX_OPS)
    assert type(outline.error) is errors.ERR_TOO_MANY_OPS and outline.cost > 0
    assert calls == 0

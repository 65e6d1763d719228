"""Txn on a KVStore on each backend (a real LMDB file; memory): compares, nested txns, reads seeing writes,
check order, atomicity.

Expected values follow etcd 3.5.1 (check orders were verified against a real etcd 3.5.1).
"""

from __future__ import annotations

import random

import pytest

from etcdx import errors
from etcdx.mvcc.schema import KEY_DB
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from tests.support.store import Store, table_rows

C = pb.Compare


def apply(store: Store, **request):
    return store.apply(**request)


def txn(store: Store, compare=(), success=(), failure=()):
    return apply(store, txn=pb.TxnRequest(compare=list(compare), success=list(success), failure=list(failure)))


def put(key: bytes, value: bytes = b"", **options) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, **options))


def get(key: bytes, range_end: bytes = b"", **options) -> pb.RequestOp:
    return pb.RequestOp(request_range=pb.RangeRequest(key=key, range_end=range_end, **options))


def delete(key: bytes, range_end: bytes = b"", **options) -> pb.RequestOp:
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=range_end, **options))


def nested(compare=(), success=(), failure=()) -> pb.RequestOp:
    return pb.RequestOp(request_txn=pb.TxnRequest(compare=list(compare), success=list(success), failure=list(failure)))


@pytest.fixture
def ab(store):
    """a = "m" (create 2, mod 4, version 2, lease 0); b = "z" (create 3, mod 3, version 1)."""
    apply(store, put=pb.PutRequest(key=b"a", value=b"a"))
    apply(store, put=pb.PutRequest(key=b"b", value=b"z"))
    apply(store, put=pb.PutRequest(key=b"a", value=b"m"))
    return store


def succeeded(store: Store, *compares: pb.Compare) -> bool:
    response = txn(store, compare=compares)
    assert response.header.revision == store.kv.current_revision
    return response.succeeded


# -- compares ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "compare, expected",
    [
        (C(key=b"a", target=C.VALUE, result=C.EQUAL, value=b"m"), True),
        (C(key=b"a", target=C.VALUE, result=C.GREATER, value=b"l"), True),
        (C(key=b"a", target=C.VALUE, result=C.LESS, value=b"m"), False),
        (C(key=b"a", target=C.VALUE, result=C.NOT_EQUAL, value=b"x"), True),
        (C(key=b"a", target=C.VERSION, result=C.EQUAL, version=2), True),
        (C(key=b"a", target=C.VERSION, result=C.GREATER, version=2), False),
        (C(key=b"a", target=C.CREATE, result=C.EQUAL, create_revision=2), True),
        (C(key=b"a", target=C.CREATE, result=C.LESS, create_revision=3), True),
        (C(key=b"a", target=C.MOD, result=C.EQUAL, mod_revision=4), True),
        (C(key=b"a", target=C.MOD, result=C.NOT_EQUAL, mod_revision=4), False),
        (C(key=b"a", target=C.LEASE, result=C.EQUAL, lease=0), True),
        (C(key=b"a", target=C.LEASE, result=C.GREATER, lease=0), False),
        # a missing key: VALUE always fails; other targets compare against a zero KeyValue
        (C(key=b"x", target=C.VALUE, result=C.EQUAL, value=b""), False),
        (C(key=b"x", target=C.VALUE, result=C.NOT_EQUAL, value=b"q"), False),
        (C(key=b"x", target=C.CREATE, result=C.EQUAL, create_revision=0), True),
        (C(key=b"x", target=C.VERSION, result=C.LESS, version=1), True),
        (C(key=b"x", target=C.MOD, result=C.GREATER, mod_revision=0), False),
        # target_union not set: compares against zero / empty
        (C(key=b"a", target=C.VERSION, result=C.GREATER), True),
        (C(key=b"a", target=C.VALUE, result=C.GREATER), True),
        # target_union holding another target's field compares against zero
        (C(key=b"a", target=C.MOD, result=C.GREATER, version=100), True),
        # a range compare holds only when every key in it satisfies it
        (C(key=b"a", range_end=b"c", target=C.VERSION, result=C.GREATER, version=0), True),
        (C(key=b"a", range_end=b"c", target=C.VERSION, result=C.EQUAL, version=2), False),
        (C(key=b"a", range_end=b"\0", target=C.CREATE, result=C.LESS, create_revision=4), True),
        (C(key=b"c", range_end=b"\0", target=C.CREATE, result=C.EQUAL, create_revision=0), True),
    ],
)
def test_compare(ab, compare, expected):
    assert succeeded(ab, compare) is expected


def test_all_compares_must_hold(ab):
    holds = C(key=b"a", target=C.VERSION, result=C.EQUAL, version=2)
    fails = C(key=b"b", target=C.VERSION, result=C.EQUAL, version=2)
    assert succeeded(ab, holds, holds)
    assert not succeeded(ab, holds, fails)
    assert succeeded(ab)  # no compare: success


# -- ops, revisions, reads seeing writes ---------------------------------------------------


def test_branch_ops_run_in_order_with_one_revision(ab):
    response = txn(
        ab,
        compare=[C(key=b"a", target=C.VALUE, result=C.EQUAL, value=b"nope")],
        failure=[get(b"a"), put(b"a", b"n", prev_kv=True), get(b"a"), delete(b"b", prev_kv=True), get(b"b")],
    )
    assert not response.succeeded and response.header.revision == 5
    before, put_response, after, deleted, gone = response.responses
    assert before.response_range.kvs[0].value == b"m" and before.response_range.header.revision == 4
    assert put_response.response_put.header.revision == 5
    assert put_response.response_put.prev_kv.value == b"m"
    kv = after.response_range.kvs[0]
    assert (kv.value, kv.mod_revision, kv.version) == (b"n", 5, 3)
    assert after.response_range.header.revision == 5
    assert deleted.response_delete_range.deleted == 1
    assert deleted.response_delete_range.prev_kvs[0].key == b"b"
    assert deleted.response_delete_range.header.revision == 5
    assert gone.response_range.count == 0
    assert ab.kv.current_revision == 5


def test_two_changes_in_one_txn_get_sub_revisions_of_one_main(ab):
    txn(ab, success=[put(b"c", b"1"), put(b"d", b"1")])
    keys = [k for k, _ in table_rows(ab.backend, KEY_DB)][-2:]
    assert keys == [(5).to_bytes(8, "big") + b"_" + sub.to_bytes(8, "big") for sub in (0, 1)]


def test_txn_that_changes_nothing_keeps_the_revision(ab):
    response = txn(ab, success=[delete(b"zz"), get(b"a")])
    assert response.header.revision == 4
    assert response.responses[0].response_delete_range.header.revision == 4
    assert ab.kv.current_revision == 4


def test_read_in_txn_at_an_old_revision(ab):
    response = txn(ab, success=[put(b"a", b"new"), get(b"a", revision=3)])
    assert response.responses[1].response_range.kvs[0].value == b"a"
    assert response.responses[1].response_range.header.revision == 5


# -- nested txns ---------------------------------------------------------------------------


def test_nested_compares_see_the_state_before_the_txn(ab):
    response = txn(
        ab,
        success=[
            put(b"c", b"1"),
            nested(compare=[C(key=b"c", target=C.VERSION, result=C.EQUAL, version=0)], success=[get(b"c")]),
        ],
    )
    inner = response.responses[1].response_txn
    assert response.succeeded and inner.succeeded
    assert inner.responses[0].response_range.kvs[0].value == b"1"  # but reads see the txn's writes


def test_nested_response_has_an_empty_header_and_its_own_succeeded(ab):
    response = txn(
        ab,
        success=[
            nested(
                compare=[C(key=b"zz", target=C.VALUE, result=C.EQUAL, value=b"")],
                success=[put(b"x", b"then")],
                failure=[put(b"x", b"else"), nested(success=[put(b"y", b"deep")])],
            )
        ],
    )
    inner = response.responses[0].response_txn
    assert response.succeeded and not inner.succeeded
    assert inner.HasField("header") and inner.header == pb.ResponseHeader()
    assert inner.responses[1].response_txn.succeeded
    assert inner.responses[0].response_put.header.revision == 5
    assert response.header.revision == 5
    assert [kv.value for kv in ab.kv.range(pb.RangeRequest(key=b"x", range_end=b"z")).kvs] == [b"else", b"deep"]


# -- checks before writing: which error, and nothing written ------------------------------


def assert_refused(store: Store, error: type[errors.EtcdError], **branches) -> None:
    revision = store.kv.current_revision
    assert isinstance(txn(store, **branches), error)
    assert store.kv.current_revision == revision


def test_range_at_a_future_revision_fails_the_txn(ab):
    assert_refused(ab, errors.ERR_FUTURE_REV, success=[put(b"c", b"1"), get(b"a", revision=5)])
    assert_refused(ab, errors.ERR_FUTURE_REV, success=[get(b"a", revision=5)])  # read-only txn too


def test_range_below_the_compacted_revision_fails_the_txn(ab):
    apply(ab, compaction=pb.CompactionRequest(revision=3))
    assert_refused(ab, errors.ERR_COMPACTED, success=[get(b"a", revision=2)])
    assert_refused(ab, errors.ERR_COMPACTED, success=[nested(success=[get(b"a", revision=-1)])])
    assert txn(ab, success=[get(b"a", revision=3)]).responses[0].response_range.count == 1


def test_put_checks_come_before_range_checks_and_follow_op_order(ab):
    # verified against etcd 3.5.1: lease and key checks of puts win over a later range's revision check
    assert_refused(ab, errors.ERR_LEASE_NOT_FOUND, success=[get(b"a", revision=99), put(b"c", lease=12345)])
    assert_refused(ab, errors.ERR_KEY_NOT_FOUND, success=[get(b"a", revision=99), put(b"c", ignore_value=True)])
    assert_refused(ab, errors.ERR_LEASE_NOT_FOUND, success=[put(b"c", lease=777), put(b"d", ignore_lease=True)])
    # every put is checked, also those after a put that ignores its value (whose key, "a", exists)
    assert_refused(ab, errors.ERR_LEASE_NOT_FOUND, success=[put(b"a", ignore_value=True), put(b"d", lease=777)])


def test_checks_only_cover_the_branch_that_runs(ab):
    response = txn(ab, success=[put(b"c", b"1")], failure=[get(b"a", revision=99), put(b"d", lease=5)])
    assert response.succeeded and response.header.revision == 5


def test_ignore_value_needs_the_key_before_the_txn(ab):
    assert_refused(ab, errors.ERR_KEY_NOT_FOUND, success=[put(b"c", b"1"), put(b"c", ignore_value=True)])


def test_put_that_would_find_its_key_deleted_earlier_in_the_txn_is_refused_whole(ab):
    # etcd 3.5.1 panics mid-apply here (the duplicate-key check takes range_end b"\0" literally);
    # etcdx refuses the txn before writing anything.
    assert_refused(ab, errors.ERR_KEY_NOT_FOUND, success=[delete(b"a", b"\0"), put(b"b", ignore_value=True)])
    assert_refused(
        ab, errors.ERR_KEY_NOT_FOUND, success=[nested(success=[delete(b"a", b"\0")]), put(b"a", ignore_lease=True)]
    )
    assert [kv.value for kv in ab.kv.range(pb.RangeRequest(key=b"a", range_end=b"\0")).kvs] == [b"m", b"z"]
    # Below, requests the API checks would refuse as duplicate keys: the store stays whole for them too.
    assert_refused(ab, errors.ERR_KEY_NOT_FOUND, success=[put(b"c"), delete(b"b", b"\0"), put(b"c", ignore_value=True)])
    response = txn(ab, success=[delete(b"a", b"\0"), put(b"b", b"back"), put(b"b", b"again", ignore_lease=True)])
    assert response.header.revision == 5


# -- read-only txns served without the log -------------------------------------------------

READ_ONLY_TXNS = {
    "compares hold": dict(compare=[C(key=b"a", target=C.VALUE, result=C.EQUAL, value=b"m")], success=[get(b"a")]),
    "compares fail": dict(
        compare=[C(key=b"a", target=C.VERSION, result=C.GREATER, version=5)],
        success=[get(b"a")],
        failure=[get(b"a", b"c", keys_only=True), get(b"b", revision=3)],
    ),
    "nested": dict(success=[nested(compare=[C(key=b"x", target=C.CREATE, result=C.EQUAL)], success=[get(b"", b"\0")])]),
    "old revision": dict(success=[get(b"a", revision=2), get(b"a", count_only=True)]),
    "future revision": dict(success=[get(b"a", revision=9)]),
    "compacted revision": dict(success=[nested(success=[get(b"a", revision=1)])]),
    "empty": dict(),
}


@pytest.mark.parametrize("case", READ_ONLY_TXNS)
def test_read_only_txn_served_without_the_log_answers_as_applying_it(ab, case):
    apply(ab, compaction=pb.CompactionRequest(revision=2))
    request = pb.TxnRequest(**READ_ONLY_TXNS[case])
    try:
        served = ab.kv.read_txn(request)
    except errors.EtcdError as exc:
        served = exc
    revision = ab.kv.current_revision
    applied = txn(ab, **READ_ONLY_TXNS[case])
    assert ab.kv.current_revision == revision
    if isinstance(applied, errors.EtcdError):
        assert (type(served), served.message) == (type(applied), applied.message)
    else:
        assert served == applied


def test_index_answered_compares_agree_with_the_stored_values(store):
    """A single key's VERSION, CREATE and MOD compares are answered from the key index (txn._compare_holds); the
    answer is the one the stored KeyValue gives (compare_range over kvs), for keys rewritten, deleted and created
    again, absent, and with target_union unset or holding another target's field."""
    from etcdx.mvcc.compare import compare_range
    from etcdx.mvcc.txn import _compare_holds
    from etcdx.mvcc.write_txn import range_end

    rng = random.Random(5)
    keys = [b"k0", b"k1", b"k2", b"k3"]
    for _ in range(60):
        key = rng.choice(keys)
        if rng.random() < 0.25:
            apply(store, delete_range=pb.DeleteRangeRequest(key=key))
        else:
            apply(store, put=pb.PutRequest(key=key, value=b"v"))
    rev = store.kv.current_revision
    checked = 0
    with store.kv.backend.begin_read() as view_txn:
        view = store.kv._view(view_txn, rev)
        for key in [*keys, b"absent"]:
            for target, field in ((C.VERSION, "version"), (C.CREATE, "create_revision"), (C.MOD, "mod_revision")):
                for result in (C.EQUAL, C.NOT_EQUAL, C.GREATER, C.LESS):
                    for wanted in (0, 1, 2, rng.randrange(rev + 2), rev, rev + 1):
                        for union in (field, None, "lease"):
                            c = C(key=key, target=target, result=result)
                            if union is not None:
                                setattr(c, union, wanted)
                            slow = compare_range(c, view.kvs(c.key, range_end(c.range_end))[0])
                            assert _compare_holds(view, c) is slow, c
                            checked += 1
    assert checked == 5 * 3 * 4 * 6 * 3

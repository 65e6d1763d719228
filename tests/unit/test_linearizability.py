"""The linearizability checker (tests/support/lincheck) on hand-written and generated histories.

Hand-written: the classic register examples from the literature, revisions, txns, leases, serializable
reads, budgets and the failure report. Generated (hypothesis): histories built around a real
linearization are always accepted; the same histories with one planted fault are always rejected.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.lincheck import LINEARIZABLE, PER_KEY, UNKNOWN, VIOLATION, check
from tests.support.lincheck.generate import FAULTS, execute, history, plan
from tests.support.lincheck.history import (
    Compare,
    DeleteRange,
    DeleteRangeResponse,
    ErrorResponse,
    KeyValue,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseRevoke,
    LeaseRevokeResponse,
    Operation,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Txn,
    TxnResponse,
)
from tests.support.lincheck.model import LEASE_NOT_FOUND


def op(client, call, ret, request, response=None):
    return Operation(client, call, ret, request, response)


def put(key: bytes, value: bytes, revision: int, **kw) -> tuple:
    return Put(key, value, **kw), PutResponse(revision)


def got(revision: int, *kvs: KeyValue) -> RangeResponse:
    return RangeResponse(revision, tuple(kvs))


def kv(key: bytes, value: bytes, create: int, mod: int, version: int = 1, lease: int = 0) -> KeyValue:
    return KeyValue(key, value, create, mod, version, lease)


A1 = kv(b"a", b"1", 2, 2)


# --- the classic register examples ---------------------------------------------------------------


def test_stale_read_after_a_completed_write_is_a_violation():
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(2, 20, 30, Range(b"a"), got(1))]
    result = check(h)
    assert result.verdict == VIOLATION, result.report


def test_stale_value_under_the_current_revision_is_a_violation():
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(2, 20, 30, Range(b"a"), got(2))]
    assert check(h).verdict == VIOLATION


@pytest.mark.parametrize("seen", [got(1), got(2, A1)], ids=["before", "after"])
def test_a_read_concurrent_with_a_write_may_see_either_order(seen):
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(2, 5, 15, Range(b"a"), seen)]
    result = check(h)
    assert result.ok, result.report


def test_a_lost_acknowledged_write_is_a_violation():
    h = [
        op(1, 0, 10, *put(b"a", b"1", 2)),
        op(2, 20, 30, *put(b"b", b"2", 2)),  # the revision the lost write had been given, handed out again
        op(3, 40, 50, Range(b"a", b"\0"), got(2, kv(b"b", b"2", 2, 2))),
    ]
    assert check(h).verdict == VIOLATION


def test_a_timed_out_write_that_appears_later_is_linearizable():
    h = [op(1, 0, None, Put(b"a", b"1")), op(2, 50, 60, Range(b"a"), got(2, A1))]
    assert check(h).ok


def test_a_timed_out_write_may_never_take_effect():
    h = [op(1, 0, None, Put(b"a", b"1")), op(2, 50, 60, Range(b"a"), got(1))]
    assert check(h).ok


def test_a_timed_out_write_seen_before_its_call_is_a_violation():
    h = [op(2, 0, 10, Range(b"a"), got(2, A1)), op(1, 20, None, Put(b"a", b"1"))]
    assert check(h).verdict == VIOLATION


def test_a_timed_out_write_is_seen_at_one_point_only():
    h = [
        op(1, 0, None, Put(b"a", b"1")),
        op(2, 10, 20, Range(b"a"), got(2, A1)),
        op(2, 30, 40, Range(b"a"), got(1)),  # the write cannot be undone
    ]
    assert check(h).verdict == VIOLATION


def test_a_timed_out_read_is_dropped():
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(2, 20, None, Range(b"a"))]
    result = check(h)
    assert result.ok and result.dropped_unknown_reads == 1


# --- revisions ---------------------------------------------------------------------------------------


def test_a_response_revision_that_goes_back_is_a_violation():
    h = [
        op(1, 0, 10, *put(b"a", b"1", 2)),
        op(1, 11, 20, *put(b"b", b"1", 3)),
        op(2, 30, 40, Range(b"c"), got(2)),  # key c never changed, but revision 2 is in the past
    ]
    assert check(h).verdict == VIOLATION


def test_a_revision_skipped_without_any_write_to_explain_it_is_a_violation():
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(1, 20, 30, *put(b"b", b"1", 4))]
    assert check(h).verdict == VIOLATION


def test_a_revision_skipped_by_a_timed_out_write_is_linearizable():
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(2, 5, None, Put(b"c", b"x")), op(1, 20, 30, *put(b"b", b"1", 4))]
    assert check(h).ok


def test_versions_and_create_revisions_follow_the_key():
    h = [
        op(1, 0, 10, *put(b"a", b"1", 2)),
        op(1, 11, 20, Put(b"a", b"2", prev_kv=True), PutResponse(3, A1)),
        op(1, 21, 30, Range(b"a"), got(3, kv(b"a", b"2", 2, 3, version=2))),
        op(1, 31, 40, DeleteRange(b"a"), DeleteRangeResponse(4, 1)),
        op(1, 41, 50, DeleteRange(b"a"), DeleteRangeResponse(4, 0)),  # deleting nothing bumps nothing
        op(1, 51, 60, *put(b"a", b"3", 5)),
        op(1, 61, 70, Range(b"a"), got(5, kv(b"a", b"3", 5, 5))),
    ]
    assert check(h).ok
    wrong_version = h[:2] + [op(1, 21, 30, Range(b"a"), got(3, kv(b"a", b"2", 2, 3, version=1)))]
    assert check(wrong_version).verdict == VIOLATION


# --- txns and leases ---------------------------------------------------------------------------------


def cas(expected: bytes, new: bytes) -> Txn:
    return Txn((Compare(b"a", "value", "=", expected),), (Put(b"a", new),), (Range(b"a"),))


def test_two_concurrent_compare_and_swaps_cannot_both_succeed():
    h = [
        op(1, 0, 5, *put(b"a", b"0", 2)),
        op(1, 10, 20, cas(b"0", b"1"), TxnResponse(3, True, (PutResponse(3),))),
        op(2, 12, 22, cas(b"0", b"2"), TxnResponse(4, True, (PutResponse(4),))),
    ]
    assert check(h).verdict == VIOLATION


def test_of_two_concurrent_compare_and_swaps_one_wins_and_the_other_sees_its_value():
    h = [
        op(1, 0, 5, *put(b"a", b"0", 2)),
        op(1, 10, 20, cas(b"0", b"1"), TxnResponse(3, True, (PutResponse(3),))),
        op(2, 12, 22, cas(b"0", b"2"), TxnResponse(3, False, (got(3, kv(b"a", b"1", 2, 3, version=2)),))),
    ]
    assert check(h).ok


def test_a_txn_compares_create_revision_and_writes_at_one_revision():
    txn = Txn((Compare(b"a", "create", "=", 0),), (Put(b"a", b"1"), Put(b"b", b"1"), Range(b"a")), ())
    response = TxnResponse(2, True, (PutResponse(2), PutResponse(2), got(2, A1)))
    h = [op(1, 0, 10, txn, response), op(1, 11, 20, Range(b"a", b"\0"), got(2, A1, kv(b"b", b"1", 2, 2)))]
    assert check(h).ok
    again = [*h, op(1, 21, 30, txn, response)]  # a second run must fail its compare
    assert check(again).verdict == VIOLATION


def test_lease_revoke_deletes_its_keys_at_a_new_revision():
    h = [
        op(1, 0, 10, LeaseGrant(7), LeaseGrantResponse(1, 7)),
        op(1, 11, 20, *put(b"a", b"1", 2, lease=7)),
        op(1, 21, 30, Put(b"b", b"1", lease=8), ErrorResponse(LEASE_NOT_FOUND)),
        op(1, 31, 40, LeaseRevoke(7), LeaseRevokeResponse(3)),
        op(1, 41, 50, Range(b"a", b"\0"), got(3)),
    ]
    assert check(h).ok
    kept = h[:4] + [op(1, 41, 50, Range(b"a", b"\0"), got(3, kv(b"a", b"1", 2, 2, lease=7)))]
    assert check(kept).verdict == VIOLATION


# --- serializable reads --------------------------------------------------------------------------------


def test_a_stale_serializable_read_from_another_clients_past_is_allowed():
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(2, 20, 30, Range(b"a", serializable=True), got(1))]
    assert check(h).ok


def test_a_serializable_read_below_what_its_own_client_saw_is_a_violation():
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(1, 20, 30, Range(b"a", serializable=True), got(1))]
    assert check(h).verdict == VIOLATION


def test_a_serializable_read_below_what_its_client_saw_on_another_member_is_allowed():
    """After a failover (a new session) the member now asked may have applied less, in etcd too."""
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), Operation(1, 20, 30, Range(b"a", serializable=True), got(1), session=1)]
    assert check(h).ok
    same_session = [op(1, 0, 10, *put(b"a", b"1", 2)), op(1, 20, 30, Range(b"a", serializable=True), got(2, A1))]
    went_back = [*same_session, op(1, 40, 50, Range(b"a", serializable=True), got(1))]
    assert check(same_session).ok and check(went_back).verdict == VIOLATION


def test_a_serializable_read_of_the_future_is_a_violation():
    h = [op(2, 0, 10, Range(b"a", serializable=True), got(2, A1)), op(1, 20, 30, *put(b"a", b"1", 2))]
    assert check(h).verdict == VIOLATION


def test_a_serializable_read_must_match_the_state_at_its_revision():
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(2, 20, 30, Range(b"a", serializable=True), got(1, A1))]
    assert check(h).verdict == VIOLATION


# --- budget, fallback, report ------------------------------------------------------------------------------


def test_an_exhausted_budget_is_unknown_never_a_pass():
    h = history(3, 60, 5)
    result = check(h, budget=5)
    assert result.verdict == UNKNOWN and not result.ok


def test_a_single_key_history_falls_back_to_per_key_without_revisions_and_says_so():
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(2, 5, 15, *put(b"b", b"1", 3)), op(1, 20, 30, Range(b"a"), got(3, A1))]
    result = check(h, budget=1, per_key_budget=10_000)
    assert result.verdict == PER_KEY and not result.ok
    assert "revisions NOT checked" in result.report


def test_the_per_key_fallback_still_finds_a_stale_value():
    h = [
        op(1, 0, 10, *put(b"a", b"1", 2)),
        op(2, 5, 15, *put(b"b", b"1", 3)),
        op(1, 20, 30, *put(b"a", b"2", 4)),
        op(3, 40, 50, Range(b"a"), got(4, A1)),
    ]
    result = check(h, budget=1, per_key_budget=10_000)
    assert result.verdict == VIOLATION and "without revisions" in result.report


def test_the_violation_report_names_the_operations_and_what_the_model_expected():
    h = [op(1, 0, 10, *put(b"a", b"1", 2)), op(2, 20, 30, Range(b"a"), got(1))]
    report = check(h).report
    assert "NOT LINEARIZABLE" in report
    assert "client 1 [0 .. 10] put a=1 -> rev 2\n      fits here, but every order that continues" in report
    assert "lowest revision still owed to: client 2 [20 .. 30] range a -> rev 1 []" in report


def test_the_report_cuts_the_history_to_the_smallest_failing_prefix():
    rng = random.Random(11)
    ops = execute(rng, plan(rng, 200, 5, leases=False)).history
    first_write = min((o for o in ops if isinstance(o.response, PutResponse)), key=lambda o: o.ret)
    # a stale read right after the first acknowledged write: everything after it is noise the report leaves out
    bad = op(9, first_write.ret + 0.5, first_write.ret + 0.75, Range(b"k0", b"\0"), got(1))
    report = check([*ops, bad]).report
    assert f"smallest failing prefix: the history up to t={bad.ret:g} " in report
    assert "client 9" in report


# --- generated histories --------------------------------------------------------------------------------

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    seed=st.integers(0, 2**32),
    n_ops=st.integers(1, 60),
    n_clients=st.integers(1, 8),
    timeout_rate=st.sampled_from([0.0, 0.05, 0.15]),
    serializable_rate=st.sampled_from([0.0, 0.3]),
)
def test_histories_around_a_real_linearization_are_accepted(seed, n_ops, n_clients, timeout_rate, serializable_rate):
    h = history(seed, n_ops, n_clients, timeout_rate=timeout_rate, serializable_rate=serializable_rate)
    result = check(h)
    assert result.verdict == LINEARIZABLE, result.report


@SETTINGS
@given(
    seed=st.integers(0, 2**32),
    n_ops=st.integers(2, 60),
    n_clients=st.integers(1, 8),
    fault=st.sampled_from(FAULTS),
)
def test_histories_with_one_planted_fault_are_rejected(seed, n_ops, n_clients, fault):
    stale = fault == "stale-read"
    h = history(seed, n_ops, n_clients, fault=fault, leases=stale, timeout_rate=0.05 if stale else 0.0)
    if h is None:
        return  # no place in this history where the fault would be visible
    result = check(h)
    assert result.verdict == VIOLATION, f"{fault} not caught:\n{result.report}"


def test_a_thousand_operations_from_ten_clients_are_judged():
    result = check(history(1, 1000, 10, timeout_rate=0.02))
    assert result.ok, result.report

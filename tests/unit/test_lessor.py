"""The lessor's expiry queue: what ``expired`` lists always equals the definition (every lease whose
expiry has passed, earliest first, up to the limit), whatever grants, renewals, revokes and promotions
came before. Time is a number the test moves."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx.lease.lessor import FOREVER, Lessor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def definition(lessor: Lessor, limit: int) -> list[int]:
    now = lessor.clock()
    due = sorted((lease.expiry, lease.id) for lease in lessor.leases.values() if lease.expiry <= now)
    return [lease_id for _, lease_id in due[:limit]]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(1, 30), st.integers(1, 20)),
        st.tuples(st.just("renew"), st.integers(1, 30), st.just(0)),
        st.tuples(st.just("revoke"), st.integers(1, 30), st.just(0)),
        st.tuples(st.just("restore"), st.integers(31, 40), st.integers(1, 20)),
        st.tuples(st.just("promote"), st.just(0), st.integers(0, 3)),
        st.tuples(st.just("tick"), st.just(0), st.integers(0, 8)),
        st.tuples(st.just("expired"), st.just(0), st.integers(1, 5)),
    ),
    max_size=120,
)


@settings(max_examples=300)
@given(ops)
def test_expired_matches_its_definition(script):
    clock = Clock()
    lessor = Lessor(min_ttl=1, clock=clock)
    lessor.promote(extend=0)
    for op, lease_id, arg in script:
        if op == "grant" and lease_id not in lessor.leases:
            lessor.grant(lease_id, arg)
        elif op == "renew":
            lessor.renew(lease_id)
        elif op == "revoke" and lease_id in lessor.leases:
            lessor.revoke(lease_id)
        elif op == "restore" and lease_id not in lessor.leases:
            lessor.restore(lease_id, arg)
        elif op == "promote":
            lessor.promote(extend=arg)
        elif op == "tick":
            clock.now += arg
        elif op == "expired":
            assert lessor.expired(arg) == definition(lessor, arg)
    assert lessor.expired(1000) == definition(lessor, 1000)


def test_a_due_lease_is_listed_until_revoked_or_renewed_and_restored_ones_wait_for_promotion():
    clock = Clock()
    lessor = Lessor(min_ttl=1, clock=clock)
    lessor.restore(7, 5)
    clock.now = 100
    assert lessor.leases[7].expiry == FOREVER and lessor.expired(10) == []  # a follower expires nothing
    lessor.promote(extend=1)
    lessor.grant(8, 2)
    clock.now = 103
    assert lessor.expired(10) == [8]
    assert lessor.expired(10) == [8]  # still due: nobody revoked it
    assert lessor.renew(8) == 0  # too late to keep it alive
    clock.now = 106
    assert lessor.expired(1) == [8] and lessor.expired(10) == [8, 7]
    lessor.revoke(8)
    assert lessor.expired(10) == [7]


def test_keep_alives_do_not_grow_the_queue_without_bound():
    clock = Clock()
    lessor = Lessor(min_ttl=1, clock=clock)
    lessor.promote(extend=0)
    lessor.grant(1, 10)
    lessor.grant(2, 3)
    for _ in range(1000):
        clock.now += 0.01
        lessor.renew(1)
    assert len(lessor._queue) <= 2 * len(lessor.leases) + 64
    clock.now += 9.5
    assert lessor.expired(10) == [2]
    clock.now += 1
    assert lessor.expired(10) == [2, 1]

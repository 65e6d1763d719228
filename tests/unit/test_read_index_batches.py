"""ReadIndexBatches: a read is served only after a ReadIndex issued after it arrived is answered and applied."""

from __future__ import annotations

from etcdx import errors
from etcdx.server.read_index import ReadIndexBatches


class Reads:
    def __init__(self) -> None:
        self.batches = ReadIndexBatches()
        self.served: list[tuple[str, object]] = []

    def add(self, name: str) -> bool:
        return self.batches.add(lambda error: self.served.append((name, error)))


def test_one_read_index_serves_every_read_waiting_when_it_was_issued():
    r = Reads()
    assert r.add("a") is True  # the first read asks for a ReadIndex
    assert r.add("b") is False  # the next ones join it
    ctx = r.batches.issue()
    assert r.batches.issue() is None  # one in flight at a time
    r.batches.on_read_state(index=5, ctx=ctx, applied=5)
    assert r.served == [("a", None), ("b", None)]


def test_a_read_arriving_after_the_issue_waits_for_the_next_read_index():
    r = Reads()
    r.add("a")
    first = r.batches.issue()
    assert r.add("late") is False  # a request is in flight: the late read may not use its answer
    r.batches.on_read_state(index=3, ctx=first, applied=3)
    assert r.served == [("a", None)]
    second = r.batches.issue()
    assert second not in (None, first)
    r.batches.on_read_state(index=4, ctx=second, applied=4)
    assert r.served == [("a", None), ("late", None)]


def test_reads_wait_until_the_applied_index_reaches_the_read_index():
    r = Reads()
    r.add("a")
    ctx = r.batches.issue()
    r.batches.on_read_state(index=10, ctx=ctx, applied=7)
    assert r.served == []
    r.batches.on_applied(9)
    assert r.served == []
    r.batches.on_applied(10)
    assert r.served == [("a", None)]
    assert len(r.batches) == 0


def test_a_retried_request_ignores_the_answer_to_its_old_context():
    r = Reads()
    r.add("a")
    old = r.batches.issue()
    r.add("b")
    new = r.batches.retry()
    assert new not in (None, old)
    r.batches.on_read_state(index=2, ctx=old, applied=2)  # an answer to the request given up on
    assert r.served == []
    r.batches.on_read_state(index=2, ctx=new, applied=2)
    assert r.served == [("a", None)]
    assert r.batches.issue() is not None  # "b" came after the first issue: it waits for a request of its own


def test_a_read_that_came_after_a_request_is_not_failed_by_that_requests_timeout():
    """The server fails the request in flight when its request timeout (counted from its first issue) passes; a
    read that arrived after that issue keeps its own full timeout, in the next request, as in etcd."""
    r = Reads()
    r.add("a")
    r.batches.issue()
    r.add("b")
    r.batches.retry()
    r.batches.fail_in_flight(errors.ERR_TIMEOUT())
    assert [name for name, _ in r.served] == ["a"]
    assert len(r.batches) == 1 and r.batches.issue() is not None


def test_fail_all_ends_every_read_once_with_the_error():
    r = Reads()
    r.add("waiting-apply")
    ctx = r.batches.issue()
    r.batches.on_read_state(index=9, ctx=ctx, applied=1)
    r.add("in-flight")
    r.batches.issue()
    r.add("next")
    r.batches.fail_all(errors.ERR_NO_LEADER())
    assert sorted(name for name, _ in r.served) == ["in-flight", "next", "waiting-apply"]
    assert all(isinstance(error, errors.ERR_NO_LEADER) for _, error in r.served)
    r.batches.on_applied(100)
    assert len(r.served) == 3


def test_fail_in_flight_ends_only_the_reads_of_the_request_in_flight():
    """A leader change (or the request timeout) gives up on the ReadIndex in flight: its reads fail; reads
    already answered wait for their apply, and reads that came after it get the next request."""
    r = Reads()
    r.add("waiting-apply")
    ctx = r.batches.issue()
    r.batches.on_read_state(index=9, ctx=ctx, applied=1)
    r.add("in-flight")
    lost = r.batches.issue()
    r.add("next")
    r.batches.fail_in_flight(errors.ERR_LEADER_CHANGED())
    assert [(name, type(error)) for name, error in r.served] == [("in-flight", errors.ERR_LEADER_CHANGED)]
    r.batches.on_read_state(index=10, ctx=lost, applied=10)  # its answer, late: nobody waits for it any more
    assert len(r.served) == 1
    fresh = r.batches.issue()
    r.batches.on_read_state(index=10, ctx=fresh, applied=10)
    assert [name for name, _ in r.served] == ["in-flight", "next"]
    r.batches.on_applied(9)
    assert [name for name, _ in r.served] == ["in-flight", "next", "waiting-apply"]
    r.batches.fail_in_flight(errors.ERR_TIMEOUT())  # nothing in flight: nothing happens
    assert len(r.served) == 3

"""The request timeout of proposals and the error etcd 3.5 gives one that runs out (parseProposeCtxErr)."""

from etcdx import errors
from etcdx.server.request_timeout import ProposalDeadlines, request_timeout, timeout_error
from etcdx.server.waiters import Waiters


def test_the_request_timeout_is_etcds():
    assert request_timeout(1000) == 7.0
    assert request_timeout(500) == 6.0


def test_deadlines_expire_by_slot_in_the_order_proposals_were_made():
    deadlines = ProposalDeadlines(7.0, slot=0.1)
    deadlines.add(1, now=10.0)
    deadlines.add(2, now=10.05)  # same slot
    deadlines.add(5, now=11.0)
    deadlines.add(6, now=11.5)
    assert len(deadlines) == 3  # memory per slot, not per proposal
    assert deadlines.expired(16.9) == []
    assert deadlines.expired(18.0) == [(1, 2, 10.0), (5, 5, 11.0)]
    assert deadlines.expired(100.0) == [(6, 6, 11.5)]
    assert deadlines.expired(200.0) == []


def test_waiters_list_the_ids_of_a_slot_still_waiting():
    waiters = Waiters()
    for request_id in (3, 4, 7, 100):
        waiters.on_resolve(request_id, lambda _: None)
    waiters.resolve(4, None)
    assert waiters.pending_between(1, 10) == [3, 7]  # walks the range
    assert waiters.pending_between(5, 10**9) == [7, 100]  # walks the waiters
    assert waiters.pending_between(8, 99) == []


def message(**kw) -> str:
    args = dict(started=10.0, leader_elected_at=None, election_timeout=1.0, leader=5, connected=True) | kw
    return timeout_error(**args).message


def test_a_proposal_made_just_before_this_member_became_leader_blames_the_previous_leader():
    assert message(leader_elected_at=11.5) == errors.ERR_TIMEOUT_DUE_TO_LEADER_FAIL.message
    # Outside the two election timeouts before the election: a plain timeout.
    assert message(leader_elected_at=12.5) == errors.ERR_TIMEOUT.message
    assert message(leader_elected_at=9.0) == errors.ERR_TIMEOUT.message


def test_a_member_cut_off_from_its_leader_says_so():
    assert message(connected=False) == errors.ERR_TIMEOUT_DUE_TO_CONNECTION_LOST.message
    assert message(leader=0, connected=False) == errors.ERR_TIMEOUT.message  # no leader known
    assert message() == errors.ERR_TIMEOUT.message

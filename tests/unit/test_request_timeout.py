"""The request timeout of proposals and the error etcd 3.5 gives one that runs out (parseProposeCtxErr)."""

from etcdx import errors
from etcdx.server.request_timeout import ProposalDeadlines, request_timeout, timeout_error


def test_the_request_timeout_is_etcds():
    assert request_timeout(1000) == 7.0
    assert request_timeout(500) == 6.0


def test_deadlines_expire_in_the_order_proposals_were_made():
    deadlines = ProposalDeadlines(7.0)
    deadlines.add(1, now=10.0)
    deadlines.add(2, now=11.0)
    deadlines.add(3, now=11.5)
    assert deadlines.expired(16.9) == []
    assert deadlines.expired(18.0) == [(1, 10.0), (2, 11.0)]
    assert len(deadlines) == 1
    assert deadlines.expired(100.0) == [(3, 11.5)]
    assert deadlines.expired(200.0) == []


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

"""The membership state machine (etcdx/server/membership.py): etcd's checks before a change, its validation at
apply, and the rows a change leaves in the backend."""

from __future__ import annotations

import pytest

from etcdx import errors
from etcdx.mvcc import rows
from etcdx.mvcc.backend import Backend
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.raft import ConfChange, ConfChangeType
from etcdx.server.membership import Change, ChangeKind, Membership, check_urls


def member(member_id: int, name: str = "m", learner: bool = False, port: int | None = None) -> rpc_pb2.Member:
    url = f"http://127.0.0.1:{port or 2000 + member_id}"
    return rpc_pb2.Member(ID=member_id, name=name, peerURLs=[url], isLearner=learner)


@pytest.fixture
def three() -> Membership:
    return Membership([member(1), member(2), member(3)], set())


def test_a_change_travels_in_its_conf_change_and_comes_back():
    change = Change(ChangeKind.ADD, 77, member(9, name="", learner=True))
    cc = ConfChange.decode(change.conf_change().encode())
    assert cc == ConfChange(ConfChangeType.ADD_LEARNER, 9)
    back = Change.decode(cc)
    assert (back.kind, back.request_id, back.member) == (ChangeKind.ADD, 77, change.member)
    assert Change.decode(ConfChange(ConfChangeType.ADD_NODE, 9)) is None  # a restored member's entry


@pytest.mark.parametrize(
    ("kind", "target", "error"),
    [
        (ChangeKind.ADD, member(2), errors.ERR_MEMBER_EXIST),
        (ChangeKind.ADD, member(4, port=2001), errors.ERR_PEER_URL_EXIST),
        (ChangeKind.REMOVE, member(5), errors.ERR_MEMBER_NOT_FOUND),
        (ChangeKind.PROMOTE, member(1), errors.ERR_MEMBER_NOT_LEARNER),
        (ChangeKind.UPDATE_PEER_URLS, member(2, port=2003), errors.ERR_PEER_URL_EXIST),
    ],
)
def test_etcds_validation(three, kind, target, error):
    with pytest.raises(error):
        three.validate(Change(kind, 1, target))


def test_one_learner_at_most_and_removed_ids_stay_removed(three, tmp_path):
    backend = Backend(str(tmp_path / "kv"))
    try:
        with backend.begin_write() as txn:
            three.apply(Change(ChangeKind.ADD, 1, member(4, name="", learner=True)), txn)
            with pytest.raises(errors.ERR_TOO_MANY_LEARNERS):
                three.validate(Change(ChangeKind.ADD, 2, member(5, learner=True)))
            three.apply(Change(ChangeKind.REMOVE, 3, rpc_pb2.Member(ID=4)), txn)
        with pytest.raises(errors.ERR_MEMBER_NOT_FOUND):
            three.validate(Change(ChangeKind.ADD, 4, member(4, learner=True)))
        with backend.begin_read() as view:
            assert [m for m, _ in rows.members(view)] == []  # only what apply wrote: the add, then the delete
            assert Membership.load_removed(view) == {4}
    finally:
        backend.close()


def test_strict_reconfig_checks(three):
    with pytest.raises(errors.ERR_UNHEALTHY):  # not connected to voter 3
        three.check_add(member(4), me=1, connected={2}, strict=True)
    three.check_add(member(4), me=1, connected={2}, strict=False)
    three.members[4] = member(4, name="")  # an added voter that has not started
    three.members[5] = member(5, name="")
    with pytest.raises(errors.ERR_MEMBER_NOT_ENOUGH_STARTED):
        three.check_add(member(6), me=1, connected={2, 3, 4, 5}, strict=True)
    with pytest.raises(errors.ERR_MEMBER_NOT_ENOUGH_STARTED):  # 2 started of 4 voters left
        three.check_remove(1, me=1, connected={2, 3, 4, 5}, strict=True)


def test_removing_an_active_voter_needs_a_quorum_left(three):
    three.check_remove(3, me=1, connected={2}, strict=True)  # 3 is down: removing it costs nothing
    with pytest.raises(errors.ERR_UNHEALTHY):
        three.check_remove(2, me=1, connected={2}, strict=True)  # 1 and 2 left, 2 active of them... not 3
    three.check_remove(2, me=1, connected={2, 3}, strict=True)


@pytest.mark.parametrize("url", ["foo", "http://h", "ftp://h:1", "http://h:1/path", ""])
def test_bad_urls(url):
    with pytest.raises(errors.ERR_MEMBER_BAD_URLS):
        check_urls([url] if url else [])

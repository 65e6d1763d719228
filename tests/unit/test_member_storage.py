"""The member's raft storage as the core sees it when a follower needs a snapshot: a snapshot recorded without
its image is unavailable (and asks for one) until an image is attached that the log continues from; an image
that disagrees with the log or that the log was compacted past is refused."""

from __future__ import annotations

import pytest

from etcdx.raft import ConfState, Entry, Snapshot
from etcdx.raft.errors import SnapshotTemporarilyUnavailableError
from etcdx.server.raft_storage import MemberStorage

CONF = ConfState(voters=frozenset({1, 2, 3}))


def storage_with_log(last: int) -> tuple[MemberStorage, list[int]]:
    wanted: list[int] = []
    storage = MemberStorage(CONF)
    storage.on_image_wanted = lambda: wanted.append(1)
    storage.apply_snapshot(Snapshot(index=10, term=2, conf_state=CONF))
    storage.append([Entry(term=3, index=i) for i in range(11, last + 1)])
    return storage, wanted


def test_a_snapshot_without_its_image_is_unavailable_and_asks_for_one():
    storage, wanted = storage_with_log(40)
    with pytest.raises(SnapshotTemporarilyUnavailableError):
        storage.snapshot()
    assert wanted == [1]
    assert storage.stored_snapshot().index == 10


def test_an_image_at_the_snapshot_index_or_after_it_is_what_the_core_sends():
    storage, _ = storage_with_log(40)
    assert storage.attach_image(10, 2, CONF, b"image-10")
    assert (storage.snapshot().index, storage.snapshot().data) == (10, b"image-10")
    assert storage.attach_image(25, 3, CONF, b"image-25")
    snap = storage.snapshot()
    assert (snap.index, snap.term, snap.data, snap.conf_state) == (25, 3, b"image-25", CONF)
    assert storage.first_index() == 11  # recording a snapshot compacts nothing


def test_an_image_the_log_no_longer_continues_from_or_of_another_term_is_refused():
    storage, _ = storage_with_log(40)
    assert storage.attach_image(30, 3, CONF, b"image-30")
    assert not storage.attach_image(35, 2, CONF, b"wrong term")
    assert not storage.attach_image(30, 4, CONF, b"wrong term at the snapshot")
    storage.compact(20)
    assert not storage.attach_image(15, 3, CONF, b"compacted")
    assert storage.snapshot().data == b"image-30"


def test_an_older_image_is_sent_while_the_log_continues_from_it():
    """A snapshot recorded without an image after one with it (the next --snapshot-count): the older image is
    sent as long as the log holds the entries after it; once compacted past it, a new image is asked for."""
    storage, wanted = storage_with_log(60)
    assert storage.attach_image(30, 3, CONF, b"image-30")
    storage.create_snapshot(50, CONF, b"")
    storage.compact(30)
    assert (storage.snapshot().index, storage.snapshot().data) == (30, b"image-30")
    assert wanted == []
    storage.compact(40)
    with pytest.raises(SnapshotTemporarilyUnavailableError):
        storage.snapshot()
    assert wanted == [1]
    assert storage.attach_image(45, 3, CONF, b"image-45")  # built meanwhile, older than the stored snapshot
    assert (storage.snapshot().index, storage.snapshot().data) == (45, b"image-45")
    assert storage.stored_snapshot().index == 50


def test_an_image_from_before_a_member_was_added_is_not_sent_a_newer_one_is_asked_for():
    """A member added after the image was built is not in its membership and would ignore it (Raft restore),
    then be sent it again for ever: the campaign's wiped-and-re-added member looped on one. Once an image
    with the membership in force is attached, that one is sent."""
    storage, wanted = storage_with_log(40)
    grown = ConfState(voters=frozenset({1, 2, 3, 4}))
    current = [CONF]
    storage.current_conf = lambda: current[0]
    assert storage.attach_image(30, 3, CONF, b"image-30")
    assert storage.snapshot().data == b"image-30"
    current[0] = grown  # member 4 added at index 35
    with pytest.raises(SnapshotTemporarilyUnavailableError):
        storage.snapshot()
    assert wanted == [1]
    assert storage.attach_image(38, 3, grown, b"image-38")
    snap = storage.snapshot()
    assert (snap.index, snap.data, snap.conf_state) == (38, b"image-38", grown)

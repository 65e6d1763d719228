"""Compaction on a KVStore on each backend (a real LMDB file; memory): errors, what stays readable, physical
deletion, reopen.

Errors and visible results were verified against etcd 3.5.1 with the same sequence.
"""

from __future__ import annotations

import pytest

from etcdx import errors
from etcdx.mvcc import rows as backend_rows
from etcdx.mvcc import schema
from etcdx.mvcc.revision import backend_key, pack
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.mvccpb import kv_pb2


@pytest.fixture
def history(store):
    """a@2, a@3, b@4, b deleted @5, c@6."""
    store.apply(put=pb.PutRequest(key=b"a", value=b"1"))
    store.apply(put=pb.PutRequest(key=b"a", value=b"2"))
    store.apply(put=pb.PutRequest(key=b"b", value=b"1"))
    store.apply(delete_range=pb.DeleteRangeRequest(key=b"b"))
    store.apply(put=pb.PutRequest(key=b"c", value=b"1"))
    return store


def rows(*revisions: int, tombstones: tuple[int, ...] = ()) -> list[bytes]:
    return sorted([backend_key(pack(r, 0)) for r in revisions] + [backend_key(pack(r, 0), True) for r in tombstones])


def test_a_fresh_store_compacts_at_its_first_revision_once(store):
    response = store.compact(1)
    assert response.header.revision == 1 and store.kv.compact_revision == 1
    assert isinstance(store.compact(1), errors.ERR_COMPACTED)
    assert store.kv.consistent_index == 2


def test_compaction_revision_errors(history):
    assert isinstance(history.compact(7), errors.ERR_FUTURE_REV)
    assert history.compact(5).header.revision == 6
    assert isinstance(history.compact(5), errors.ERR_COMPACTED)
    assert isinstance(history.compact(3), errors.ERR_COMPACTED)
    assert history.compact(6).header.revision == 6
    assert history.kv.current_revision == 6  # compaction is not a write


def test_reads_below_the_compacted_revision_fail_and_at_it_succeed(history):
    history.compact(5)
    with pytest.raises(errors.EtcdError) as caught:
        history.range(b"a", revision=4)
    assert isinstance(caught.value, errors.ERR_COMPACTED)
    at_five = history.range(b"\0", b"\0", revision=5)
    assert [(kv.key, kv.mod_revision, kv.version) for kv in at_five.kvs] == [(b"a", 3, 2)]
    assert history.range(b"\0", b"\0", revision=6, count_only=True).count == 2
    assert history.range(b"a", revision=-1, count_only=True).count == 1


def test_compaction_deletes_old_revisions_and_ended_generations(history):
    history.compact(5)
    # a keeps its newest value <= 5; b's generation ended at 5 so its value goes; only the tombstone at 5
    # stays, because a watcher may still read revision 5 itself
    assert history.stored_revisions() == rows(3, 6, tombstones=(5,))
    assert history.range(b"b", revision=5).count == 0
    [(revision, events)] = history.kv.history(5, 5)
    assert revision == 5 and [(e.type, e.kv.key) for e in events] == [(kv_pb2.Event.DELETE, b"b")]
    history.compact(6)  # the next compaction takes the tombstone
    assert history.stored_revisions() == rows(3, 6)


def test_a_generation_ending_after_the_compaction_keeps_its_value_and_tombstone(history):
    history.compact(4)
    assert history.stored_revisions() == rows(3, 4, 6, tombstones=(5,))
    assert [kv.value for kv in history.range(b"b", revision=4).kvs] == [b"1"]
    assert history.range(b"b", revision=5).count == 0


def test_compacting_at_the_tombstone_removes_a_deleted_key_entirely(history):
    history.compact(6)
    assert history.stored_revisions() == rows(3, 6)
    # the key starts afresh: version 1, created now
    response = history.apply(put=pb.PutRequest(key=b"b", value=b"again", prev_kv=True))
    assert not response.HasField("prev_kv")
    kv = history.range(b"b").kvs[0]
    assert (kv.create_revision, kv.mod_revision, kv.version) == (7, 7, 1)


def test_previous_values_survive_compaction_until_overwritten(history):
    history.compact(6)
    response = history.apply(put=pb.PutRequest(key=b"a", value=b"3", prev_kv=True))
    prev = response.prev_kv
    assert (prev.value, prev.create_revision, prev.mod_revision, prev.version) == (b"2", 2, 3, 2)


def test_reopen_after_compaction_rebuilds_the_same_state(history):
    history.compact(4)
    before = [history.range(b"\0", b"\0", revision=r) for r in range(4, 7)]
    history.reopen()
    assert history.kv.compact_revision == 4 and history.kv.current_revision == 6
    assert [history.range(b"\0", b"\0", revision=r) for r in range(4, 7)] == before
    assert isinstance(history.compact(4), errors.ERR_COMPACTED)


def test_compacting_everything_keeps_the_current_revision_across_reopen(store):
    store.apply(put=pb.PutRequest(key=b"a", value=b"1"))
    store.apply(delete_range=pb.DeleteRangeRequest(key=b"a"))
    store.compact(3)
    assert store.stored_revisions() == rows(tombstones=(3,))  # the tombstone at the compaction revision stays
    store.reopen()
    assert store.kv.current_revision == 3 and store.kv.compact_revision == 3
    assert store.apply(put=pb.PutRequest(key=b"a", value=b"2")).header.revision == 4


def test_a_compaction_scheduled_but_not_finished_is_finished_on_open(history):
    with history.backend.begin_write() as txn:
        backend_rows.put_meta_int(txn, schema.META_SCHEDULED_COMPACT, 5)
    history.reopen()
    assert history.kv.compact_revision == 5
    assert history.stored_revisions() == rows(3, 6, tombstones=(5,))

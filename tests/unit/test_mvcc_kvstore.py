"""KVStore on each backend (a real LMDB file; memory): revisions, put / delete / range semantics, reopen and replay.

Expected values follow etcd 3.5.1; the Range tie orders below were read from a real etcd 3.5.1.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from etcdx import errors
from etcdx.mvcc.schema import KEY_DB
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.pb.mvccpb import kv_pb2
from tests.support.store import table_rows

RR = pb.RangeRequest


def kv(key: bytes, value: bytes, create: int, mod: int, version: int, lease: int = 0) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(key=key, value=value, create_revision=create, mod_revision=mod, version=version, lease=lease)


# -- revisions, puts, deletes ---------------------------------------------------------------


def test_fresh_store_is_at_revision_one(store):
    assert store.kv.current_revision == 1
    assert store.kv.compact_revision == -1  # etcd's compactMainRev before any compaction
    assert store.kv.consistent_index == 0
    response = store.range(b"a")
    assert response.header.revision == 1 and response.count == 0 and not response.kvs


def test_each_put_is_one_revision_and_versions_count_puts(store):
    assert store.put(b"a", b"1").header.revision == 2
    assert store.put(b"b", b"1").header.revision == 3
    assert store.put(b"a", b"2").header.revision == 4
    assert list(store.range(b"a").kvs) == [kv(b"a", b"2", 2, 4, 2)]
    assert list(store.range(b"b").kvs) == [kv(b"b", b"1", 3, 3, 1)]


def test_put_prev_kv_only_when_the_key_exists(store):
    assert not store.put(b"a", b"1", prev_kv=True).HasField("prev_kv")
    response = store.put(b"a", b"2", prev_kv=True)
    assert response.prev_kv == kv(b"a", b"1", 2, 2, 1)
    assert not store.put(b"b", b"x").HasField("prev_kv")  # not asked for


def test_ignore_value_and_ignore_lease_keep_the_previous_ones(store):
    store.kv.lessor.grant(7, 60)
    store.put(b"a", b"old", lease=7)
    store.put(b"a", b"new", ignore_lease=True)
    assert store.range(b"a").kvs[0] == kv(b"a", b"new", 2, 3, 2, lease=7)
    store.put(b"a", ignore_value=True)  # no ignore_lease: the put's lease (none) replaces the old one
    assert store.range(b"a").kvs[0] == kv(b"a", b"new", 2, 4, 3)


def test_ignore_flags_need_an_existing_key(store):
    assert isinstance(store.put(b"a", ignore_value=True), errors.ERR_KEY_NOT_FOUND)
    assert isinstance(store.put(b"a", ignore_lease=True), errors.ERR_KEY_NOT_FOUND)
    assert store.kv.current_revision == 1


def test_put_with_unknown_lease_fails_before_the_key_check(store):
    # etcd 3.5.1 answers "lease not found" for a missing key with ignore_value and a missing lease.
    assert isinstance(store.put(b"a", lease=5, ignore_value=True), errors.ERR_LEASE_NOT_FOUND)
    assert isinstance(store.put(b"a", b"v", lease=5), errors.ERR_LEASE_NOT_FOUND)
    assert store.kv.current_revision == 1


def test_delete_range_writes_one_revision_for_all_keys(store):
    for key in (b"a", b"b", b"c"):
        store.put(key, b"v")
    response = store.delete(b"a", b"c", prev_kv=True)
    assert response.header.revision == 5 and response.deleted == 2
    assert [p.key for p in response.prev_kvs] == [b"a", b"b"]
    assert store.keys() == [b"c"]


def test_deleting_nothing_does_not_bump_the_revision(store):
    store.put(b"a", b"v")
    response = store.delete(b"zz", prev_kv=True)
    assert response.header.revision == 2 and response.deleted == 0 and not response.prev_kvs
    assert store.kv.current_revision == 2


def test_a_deleted_key_starts_a_new_generation(store):
    store.put(b"a", b"1")
    store.put(b"a", b"2")
    store.delete(b"a")
    assert store.range(b"a").count == 0
    store.put(b"a", b"3")
    assert list(store.range(b"a").kvs) == [kv(b"a", b"3", 5, 5, 1)]
    # history stays readable at older revisions
    assert list(store.range(b"a", revision=3).kvs) == [kv(b"a", b"2", 2, 3, 2)]
    assert store.range(b"a", revision=4).count == 0


def test_delete_with_range_end_zero_means_every_key_from(store):
    for key in (b"a", b"b", b"c"):
        store.put(key, b"v")
    assert store.delete(b"b", b"\0").deleted == 2
    assert store.keys() == [b"a"]


def test_backend_stores_revisions_as_etcd_does(store):
    store.put(b"a", b"v")
    store.delete(b"a")
    rows = table_rows(store.backend, KEY_DB)
    put_key = (2).to_bytes(8, "big") + b"_" + (0).to_bytes(8, "big")
    tomb_key = (3).to_bytes(8, "big") + b"_" + (0).to_bytes(8, "big") + b"t"
    assert [k for k, _ in rows] == [put_key, tomb_key]
    assert kv_pb2.KeyValue.FromString(rows[0][1]) == kv(b"a", b"v", 2, 2, 1)
    assert kv_pb2.KeyValue.FromString(rows[1][1]) == kv_pb2.KeyValue(key=b"a")


# -- range ----------------------------------------------------------------------------------


@pytest.fixture
def abc(store):
    """a@2 (v1), b@3, c@4, a@5 (v2), d@6: current revision 6."""
    for key, value in ((b"a", b"3"), (b"b", b"1"), (b"c", b"2"), (b"a", b"0"), (b"d", b"2")):
        store.put(key, value)
    return store


def test_range_single_key_prefix_and_from_key(abc):
    assert abc.keys(b"b", b"") == [b"b"]
    assert abc.keys(b"b", b"d") == [b"b", b"c"]
    assert abc.keys(b"b", b"\0") == [b"b", b"c", b"d"]
    assert abc.keys(b"\0", b"\0") == [b"a", b"b", b"c", b"d"]
    assert abc.keys(b"c", b"b") == []  # inverted range is empty
    assert abc.keys(b"zz", b"") == []


def test_limit_sets_more_and_count_counts_everything(abc):
    response = abc.range(b"a", b"\0", limit=2)
    assert [k.key for k in response.kvs] == [b"a", b"b"] and response.more and response.count == 4
    response = abc.range(b"a", b"\0", limit=4)
    assert len(response.kvs) == 4 and not response.more and response.count == 4


def test_range_at_an_older_revision(abc):
    response = abc.range(b"a", b"\0", revision=3)
    assert [(k.key, k.mod_revision) for k in response.kvs] == [(b"a", 2), (b"b", 3)]
    assert response.header.revision == 6  # the header always carries the current revision


def test_future_revision_is_refused(abc):
    with pytest.raises(errors.EtcdError) as caught:
        abc.range(b"a", revision=7)
    assert isinstance(caught.value, errors.ERR_FUTURE_REV)


def test_negative_revision_reads_current(abc):
    # verified against etcd 3.5.1: revision -5 serves the current revision
    assert abc.range(b"a", revision=-5).kvs[0].mod_revision == 5


def test_keys_only_and_count_only(abc):
    response = abc.range(b"a", b"\0", keys_only=True)
    assert [(k.key, k.value, k.version) for k in response.kvs][0] == (b"a", b"", 2)
    response = abc.range(b"a", b"\0", count_only=True, limit=1)
    assert response.count == 4 and not response.kvs and not response.more


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"sort_order": RR.DESCEND}, [b"d", b"c", b"b", b"a"]),
        ({"sort_order": RR.ASCEND, "sort_target": RR.MOD}, [b"b", b"c", b"a", b"d"]),
        ({"sort_order": RR.DESCEND, "sort_target": RR.CREATE}, [b"d", b"c", b"b", b"a"]),
        ({"sort_order": RR.DESCEND, "sort_target": RR.VERSION}, [b"a", b"b", b"c", b"d"]),
        ({"sort_order": RR.DESCEND, "sort_target": RR.VALUE}, [b"c", b"d", b"b", b"a"]),
        # NONE with a target other than KEY sorts ascending
        ({"sort_order": RR.NONE, "sort_target": RR.MOD}, [b"b", b"c", b"a", b"d"]),
        # an order that is neither ASCEND nor DESCEND leaves key order (etcd 3.5.1)
        ({"sort_order": 5, "sort_target": RR.MOD}, [b"a", b"b", b"c", b"d"]),
    ],
)
def test_sort_orders_and_targets(abc, options, expected):
    assert abc.keys(b"a", b"\0", **options) == expected


def test_limit_applies_after_sorting(abc):
    response = abc.range(b"a", b"\0", sort_order=RR.DESCEND, sort_target=RR.MOD, limit=2)
    assert [k.key for k in response.kvs] == [b"d", b"a"] and response.more and response.count == 4
    response = abc.range(b"a", b"\0", sort_order=5, limit=3)
    assert [k.key for k in response.kvs] == [b"a", b"b", b"c"] and response.more


def test_revision_filters_do_not_change_count(abc):
    response = abc.range(b"a", b"\0", min_mod_revision=4)
    assert [k.key for k in response.kvs] == [b"a", b"c", b"d"] and response.count == 4
    assert abc.keys(b"a", b"\0", max_mod_revision=4) == [b"b", b"c"]
    assert abc.keys(b"a", b"\0", min_create_revision=3, max_create_revision=4) == [b"b", b"c"]
    response = abc.range(b"a", b"\0", min_create_revision=3, limit=1)
    assert [k.key for k in response.kvs] == [b"b"] and response.more and response.count == 4


def test_sort_ties_come_back_in_go_sort_order(store):
    # 15 keys, 1-3 puts each, values v0-v3; the orders were read from etcd 3.5.1 for the same puts.
    for i in range(15):
        for _ in range(1 + (i * 7) % 3):
            store.put(b"%02d" % i, b"v%d" % ((i * 5) % 4))
    by_version = store.keys(b"0", b"2", sort_order=RR.ASCEND, sort_target=RR.VERSION)
    assert by_version == [b"%02d" % i for i in (9, 0, 3, 12, 6, 13, 4, 1, 10, 7, 8, 11, 5, 2, 14)]
    by_version = store.keys(b"0", b"2", sort_order=RR.DESCEND, sort_target=RR.VERSION)
    assert by_version == [b"%02d" % i for i in (11, 14, 2, 5, 8, 13, 4, 10, 1, 7, 9, 6, 12, 3, 0)]
    by_value = store.keys(b"0", b"2", sort_order=RR.ASCEND, sort_target=RR.VALUE)
    assert by_value == [b"%02d" % i for i in (8, 0, 12, 4, 13, 5, 9, 1, 14, 6, 10, 2, 11, 3, 7)]
    by_value = store.keys(b"0", b"2", sort_order=RR.DESCEND, sort_target=RR.VALUE)
    assert by_value == [b"%02d" % i for i in (11, 3, 7, 6, 2, 10, 14, 5, 9, 1, 13, 8, 4, 12, 0)]


# -- apply: batches, consistent index, replay, reopen ----------------------------------------


def test_apply_records_the_index_even_when_the_request_fails(store):
    assert isinstance(store.put(b"a", ignore_value=True), errors.ERR_KEY_NOT_FOUND)
    assert store.kv.consistent_index == 1
    store.reopen()
    assert store.kv.consistent_index == 1


def test_replayed_indexes_are_skipped(store):
    apply = store.applier.apply_request
    with store.kv.apply_batch():
        assert apply(5, InternalRequest(put=pb.PutRequest(key=b"a", value=b"1"))).header.revision == 2
        assert apply(5, InternalRequest(put=pb.PutRequest(key=b"a", value=b"2"))) is None
        assert apply(3, InternalRequest(put=pb.PutRequest(key=b"a", value=b"3"))) is None
    assert store.kv.consistent_index == 5 and store.kv.current_revision == 2
    assert store.range(b"a").kvs[0].value == b"1"


def test_one_batch_holds_several_entries_and_reads_see_them(store):
    with store.kv.apply_batch():
        store.applier.apply_request(1, InternalRequest(put=pb.PutRequest(key=b"a", value=b"1")))
        store.applier.apply_request(2, InternalRequest(put=pb.PutRequest(key=b"b", value=b"1")))
        assert store.keys() == [b"a", b"b"]
    assert store.kv.current_revision == 3
    store.reopen()
    assert store.keys() == [b"a", b"b"] and store.kv.consistent_index == 2


def test_a_batch_that_raises_commits_nothing(store):
    store.put(b"a", b"1")
    with pytest.raises(RuntimeError), store.kv.apply_batch():
        raise RuntimeError("crash inside a batch")
    store.reopen()
    assert store.kv.consistent_index == 1 and store.keys() == [b"a"]


def test_reopen_rebuilds_the_same_state(store):
    store.put(b"a", b"1")
    store.put(b"b", b"1")
    store.put(b"a", b"2")
    store.delete(b"b")
    store.put(b"b", b"3")
    store.delete(b"c")
    before = [store.range(b"\0", b"\0", revision=r) for r in range(1, 7)]
    store.reopen()
    assert store.kv.current_revision == 6 and store.kv.consistent_index == 6
    assert [store.range(b"\0", b"\0", revision=r) for r in range(1, 7)] == before
    assert store.put(b"b", b"4").header.revision == 7
    assert list(store.range(b"b").kvs) == [kv(b"b", b"4", 6, 7, 2)]


def test_backend_reports_sizes(store):
    before = store.backend.size_in_use_bytes
    store.put(b"a", b"x" * 1_000_000)
    assert store.backend.size_in_use_bytes >= before + 1_000_000
    assert store.backend.size_bytes >= store.backend.size_in_use_bytes


def test_alarms_are_applied_state_that_survives_a_reopen(store):
    def alarm(action, member_id=7, kind=pb.NOSPACE):
        response = store.apply(alarm=pb.AlarmRequest(action=action, memberID=member_id, alarm=kind))
        return [(a.memberID, a.alarm) for a in response.alarms]

    assert alarm(pb.AlarmRequest.ACTIVATE) == [(7, pb.NOSPACE)]
    assert alarm(pb.AlarmRequest.ACTIVATE, 9, pb.CORRUPT) == [(9, pb.CORRUPT)]
    assert store.kv.current_revision == 1  # alarms are not keys: no revision
    store.reopen()
    assert store.alarms.list() == [(7, pb.NOSPACE), (9, pb.CORRUPT)]
    assert alarm(pb.AlarmRequest.DEACTIVATE) == [(7, pb.NOSPACE)]
    assert alarm(pb.AlarmRequest.DEACTIVATE) == []  # not active any more: nothing to answer
    store.reopen()
    assert store.alarms.list() == [(9, pb.CORRUPT)]


def test_a_replaced_store_is_freed_by_reference_counting_alone(tmp_path):
    """A member freezes its boot store from the cyclic collector (gc.freeze); when a snapshot install replaces
    that store, its key index must still be freed: the store holds no reference cycle."""
    from etcdx.mvcc.kvstore import KVStore
    from etcdx.mvcc.memory_backend import MemoryBackend

    store = KVStore(MemoryBackend())
    with store.apply_batch():
        store.put(pb.PutRequest(key=b"a", value=b"1"))
    store.commit()
    gone = weakref.ref(store)
    gc.disable()
    try:
        del store
        assert gone() is None
    finally:
        gc.enable()

"""The batch transaction on each backend (a real LMDB file; memory): every read sees applied writes that are
not committed yet, the committed state holds only what a commit wrote (with the consistent index of that
commit), and an abort loses what the open transaction held."""

from __future__ import annotations

import pytest

from etcdx.mvcc import rows, schema
from etcdx.mvcc.kvstore import KVStore
from etcdx.mvcc.watch import Watcher, WatchHub
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.mvccpb import kv_pb2
from tests.support.store import BACKENDS, Store, table_rows
from tests.support.watch_sink import Sink


def committed(store: Store) -> tuple[int, list[bytes]]:
    """(consistent index, keys of its rows) of the committed state: what a new read view sees."""
    with store.backend.begin_read() as view:
        index = rows.get_meta_int(view, schema.META_CONSISTENT_INDEX, 0)
    return index, [kv_pb2.KeyValue.FromString(value).key for _, value in table_rows(store.backend, schema.KEY_DB)]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """Each apply in its own apply batch, the batch transaction left open."""
    s = Store(request.param, str(tmp_path), commit_each=False)
    yield s
    s.close()


def encoded_range(kv: KVStore, **fields) -> pb.RangeResponse:
    return pb.RangeResponse.FromString(kv.range_encoded(pb.RangeRequest(**fields), (0, 0, 0)))


def test_every_read_sees_applied_writes_before_the_commit(store):
    store.put(b"a", b"1")
    store.put(b"b", b"1")
    store.put(b"a", b"2", prev_kv=True)
    assert store.kv.uncommitted_entries == 3
    everything = dict(key=b"\0", range_end=b"\0")
    assert [(kv.key, kv.value) for kv in store.kv.range(pb.RangeRequest(**everything)).kvs] == [
        (b"a", b"2"),
        (b"b", b"1"),
    ]
    # range_encoded's stored-bytes fast path, a count, and a read at an older revision
    assert [(kv.key, kv.value) for kv in encoded_range(store.kv, **everything).kvs] == [(b"a", b"2"), (b"b", b"1")]
    assert encoded_range(store.kv, count_only=True, **everything).count == 2
    assert encoded_range(store.kv, key=b"a", revision=2).kvs[0].value == b"1"
    # a read-only txn
    txn = pb.TxnRequest(
        compare=[pb.Compare(key=b"a", target=pb.Compare.VALUE, result=pb.Compare.EQUAL, value=b"2")],
        success=[pb.RequestOp(request_range=pb.RangeRequest(key=b"b"))],
    )
    answer = store.kv.read_txn(txn)
    assert answer.succeeded and answer.responses[0].response_range.kvs[0].value == b"1"
    # watch history and prev_kv
    assert [(rev, [e.kv.value for e in events]) for rev, events in store.kv.history(2, 4)] == [
        (2, [b"1"]),
        (3, [b"1"]),
        (4, [b"2"]),
    ]
    assert store.kv.previous_kv(b"a", 4).value == b"1"
    assert committed(store) == (0, [])
    assert store.kv.committed_index == 0


def test_a_put_with_prev_kv_and_a_txn_read_the_open_transaction(store):
    store.put(b"a", b"1")
    assert store.put(b"a", b"2", prev_kv=True).prev_kv.value == b"1"
    deleted = store.apply(delete_range=pb.DeleteRangeRequest(key=b"a", prev_kv=True))
    assert [kv.value for kv in deleted.prev_kvs] == [b"2"]
    txn = pb.TxnRequest(
        compare=[pb.Compare(key=b"a", target=pb.Compare.VERSION, result=pb.Compare.EQUAL, version=0)],
        success=[pb.RequestOp(request_put=pb.PutRequest(key=b"c", value=b"3"))],
    )
    assert store.apply(txn=txn).succeeded


def test_a_commit_writes_what_was_applied_with_its_index(store):
    store.put(b"a", b"1")
    store.put(b"b", b"1")
    assert store.kv.commit() == 2
    assert (store.kv.committed_index, store.kv.uncommitted_entries) == (2, 0)
    store.put(b"c", b"1")
    assert committed(store) == (2, [b"a", b"b"])
    store.kv.commit()
    assert committed(store) == (3, [b"a", b"b", b"c"])
    assert store.kv.commit() == 3  # nothing open: nothing to do


def test_an_abort_loses_everything_since_the_last_commit(store):
    store.put(b"a", b"1")
    store.kv.commit()
    store.put(b"b", b"1")
    with pytest.raises(RuntimeError), store.kv.apply_batch():
        raise RuntimeError("a failing backend inside a batch")
    assert store.kv.uncommitted_entries == 0
    store.reopen()
    assert store.kv.consistent_index == 1
    assert [kv.key for kv in store.kv.range(pb.RangeRequest(key=b"\0", range_end=b"\0")).kvs] == [b"a"]


def test_a_compaction_in_the_open_transaction_is_what_reads_and_watchers_see(store):
    for value in (b"1", b"2", b"3"):
        store.put(b"a", value)
    store.apply(compaction=pb.CompactionRequest(revision=3))
    assert [rev for rev, _ in store.kv.history(1, 4)] == [3, 4]
    store.kv.commit()
    assert [rev for rev, _ in store.kv.history(1, 4)] == [3, 4]


def test_an_unsynced_watcher_catches_up_from_uncommitted_history(store):
    store.put(b"k", b"1")
    store.put(b"k", b"2")
    hub = WatchHub(store.kv)
    sink = Sink()
    hub.add(Watcher(1, b"k", None, sink, prev_kv=True), start_revision=2)
    hub.sync()
    events = [event for response in sink.responses for event in response.events]
    assert [(e.kv.value, e.prev_kv.value) for e in events] == [(b"1", b""), (b"2", b"1")]
    assert store.kv.committed_index == 0

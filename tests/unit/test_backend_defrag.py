"""Backend defragmentation on real LMDB files: the compact copy holds every committed row, the swapped-in
file is as small as the data in it, and the backend (and a KVStore on it) keeps working."""

from __future__ import annotations

import os

import pytest

from etcdx.mvcc import schema
from etcdx.mvcc.backend import DATA_FILE, DEFRAG_FILE, Backend
from etcdx.mvcc.kvstore import KVStore
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest

MAP_SIZE = 256 << 20


def every_row(backend: Backend) -> dict[str, list[tuple[bytes, bytes]]]:
    dbs = {"key": backend.key_db, "meta": backend.meta_db, "lease": backend.lease_db, "alarm": backend.alarm_db}
    with backend.begin_read() as txn:
        return {name: list(txn.cursor(db=db)) for name, db in dbs.items()}


def apply(store: KVStore, **request):
    with store.apply_batch():
        result = store.apply(store.consistent_index + 1, InternalRequest(**request))
    store.commit()
    return result


def test_defragmenting_shrinks_the_file_and_keeps_every_row(tmp_path):
    backend = Backend(str(tmp_path), map_size=MAP_SIZE)
    store = KVStore(backend)
    for i in range(400):
        apply(store, put=pb.PutRequest(key=b"big/%03d" % i, value=os.urandom(8192)))
    apply(store, lease_grant=pb.LeaseGrantRequest(ID=7, TTL=60))
    apply(store, put=pb.PutRequest(key=b"leased", value=b"v", lease=7))
    apply(store, alarm=pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=1, alarm=pb.CORRUPT))
    apply(store, delete_range=pb.DeleteRangeRequest(key=b"big/", range_end=b"big0"))
    apply(store, compaction=pb.CompactionRequest(revision=store.current_revision))
    before, full_size = every_row(backend), backend.size_bytes
    assert backend.size_in_use_bytes < full_size / 20  # compaction freed the pages; the file keeps them

    backend.swap_in(backend.write_compact_copy())

    assert every_row(backend) == before
    assert sorted(os.listdir(tmp_path)) == [DATA_FILE, "lock.mdb"]
    assert backend.size_bytes == backend.size_in_use_bytes < full_size / 20
    # The store on top keeps reading and writing through the reopened environment.
    assert store.range(pb.RangeRequest(key=b"leased")).kvs[0].lease == 7
    apply(store, put=pb.PutRequest(key=b"after", value=b"1"))
    assert store.range(pb.RangeRequest(key=b"after")).kvs[0].value == b"1"
    index = store.consistent_index
    backend.close()

    reopened = Backend(str(tmp_path), map_size=MAP_SIZE)
    again = KVStore(reopened)
    assert (again.consistent_index, again.current_revision) == (index, store.current_revision)
    assert again.alarms.list() == [(1, pb.CORRUPT)]
    assert again.lessor.exists(7)
    with reopened.begin_read() as txn:
        assert reopened.get_meta_int(txn, schema.META_FINISHED_COMPACT, -1) == store.compact_revision
    reopened.close()


def test_a_copy_left_by_an_interrupted_defragmentation_is_overwritten(tmp_path):
    backend = Backend(str(tmp_path), map_size=MAP_SIZE)
    with backend.begin_write() as txn:
        txn.put(b"k", b"v", db=backend.key_db)
    with open(tmp_path / DEFRAG_FILE, "wb") as leftover:
        leftover.write(b"\xff" * (1 << 20))
    backend.swap_in(backend.write_compact_copy())
    assert every_row(backend)["key"] == [(b"k", b"v")]
    assert backend.size_bytes < 1 << 20
    backend.close()


def test_a_failed_swap_leaves_the_live_file_open(tmp_path):
    backend = Backend(str(tmp_path), map_size=MAP_SIZE)
    with backend.begin_write() as txn:
        txn.put(b"k", b"v", db=backend.key_db)
    with pytest.raises(FileNotFoundError):
        backend.swap_in(str(tmp_path / "no-such-copy"))
    assert every_row(backend)["key"] == [(b"k", b"v")]
    with backend.begin_write() as txn:
        txn.put(b"k2", b"v", db=backend.key_db)
    backend.close()


def test_the_copy_of_an_interrupted_defragmentation_is_discarded_before_opening(tmp_path):
    Backend.discard_interrupted_defragmentation(str(tmp_path))  # nothing to discard
    (tmp_path / DEFRAG_FILE).write_bytes(b"\0" * 4096)
    Backend.discard_interrupted_defragmentation(str(tmp_path))
    assert not (tmp_path / DEFRAG_FILE).exists()

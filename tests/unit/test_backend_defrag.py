"""Backend defragmentation on real LMDB files: the compact copy holds every committed row, the swapped-in
file is as small as the data in it, and the backend (and a KVStore on it) keeps working."""

from __future__ import annotations

import os

import pytest

from etcdx.mvcc import rows, schema
from etcdx.mvcc.backend import DATA_FILE, DEFRAG_FILE, GATE_FILE, LOCK_FILE, Backend
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from tests.support.store import Store, table_rows

MAP_SIZE = 256 << 20


def every_row(backend: Backend) -> dict[bytes, list[tuple[bytes, bytes]]]:
    return {name: table_rows(backend, name) for name in schema.TABLES}


def test_defragmenting_shrinks_the_file_and_keeps_every_row(tmp_path):
    store = Store("lmdb", str(tmp_path))
    backend = store.backend
    for i in range(400):
        store.put(b"big/%03d" % i, os.urandom(8192))
    store.apply(lease_grant=pb.LeaseGrantRequest(ID=7, TTL=60))
    store.put(b"leased", b"v", lease=7)
    store.apply(alarm=pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=1, alarm=pb.NOSPACE))
    store.delete(b"big/", b"big0")
    store.compact(store.kv.current_revision)
    before, full_size = every_row(backend), backend.size_bytes
    assert backend.size_in_use_bytes < full_size / 20  # compaction freed the pages; the file keeps them

    backend.swap_in(backend.write_compact_copy())

    assert every_row(backend) == before
    assert sorted(os.listdir(tmp_path)) == sorted([DATA_FILE, GATE_FILE, LOCK_FILE])  # no copy left behind
    assert backend.size_bytes == backend.size_in_use_bytes < full_size / 20
    # The store on top keeps reading and writing through the reopened environment.
    assert store.range(b"leased").kvs[0].lease == 7
    store.delete(b"leased")  # a write NOSPACE allows
    assert store.range(b"leased").count == 0
    index, revision, compacted = store.kv.consistent_index, store.kv.current_revision, store.kv.compact_revision

    store.reopen()
    assert (store.kv.consistent_index, store.kv.current_revision) == (index, revision)
    assert store.alarms.list() == [(1, pb.NOSPACE)]
    assert store.lessor.exists(7)
    with store.backend.begin_read() as view:
        assert rows.get_meta_int(view, schema.META_FINISHED_COMPACT, -1) == compacted
    store.close()


def test_a_copy_left_by_an_interrupted_defragmentation_is_overwritten(tmp_path):
    backend = Backend(str(tmp_path), map_size=MAP_SIZE)
    with backend.begin_write() as txn:
        txn.put(schema.KEY_DB, b"k", b"v")
    with open(tmp_path / DEFRAG_FILE, "wb") as leftover:
        leftover.write(b"\xff" * (1 << 20))
    backend.swap_in(backend.write_compact_copy())
    assert every_row(backend)[schema.KEY_DB] == [(b"k", b"v")]
    assert backend.size_bytes < 1 << 20
    backend.close()


def test_a_failed_swap_leaves_the_live_file_open(tmp_path):
    backend = Backend(str(tmp_path), map_size=MAP_SIZE)
    with backend.begin_write() as txn:
        txn.put(schema.KEY_DB, b"k", b"v")
    with pytest.raises(FileNotFoundError):
        backend.swap_in(str(tmp_path / "no-such-copy"))
    assert every_row(backend)[schema.KEY_DB] == [(b"k", b"v")]
    with backend.begin_write() as txn:
        txn.put(schema.KEY_DB, b"k2", b"v")
    backend.close()


def test_the_copy_of_an_interrupted_defragmentation_is_discarded_before_opening(tmp_path):
    Backend.discard_interrupted_defragmentation(str(tmp_path))  # nothing to discard
    (tmp_path / DEFRAG_FILE).write_bytes(b"\0" * 4096)
    Backend.discard_interrupted_defragmentation(str(tmp_path))
    assert not (tmp_path / DEFRAG_FILE).exists()

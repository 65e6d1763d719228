"""etcd's consistency hashes over stored rows (etcdx/mvcc/kv_hash.py) and the key index's ``keep``.

HashKV's equality with etcd's is tested against etcd itself (tests/integration/test_snapshot_rpcs.py); here:
``keep`` is exactly what a compaction keeps, and the hashes see exactly the rows their contracts name.
"""

from __future__ import annotations

import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx.mvcc import kv_hash, rows
from etcdx.mvcc.key_index import KeyIndex
from etcdx.mvcc.memory_backend import MemoryBackend
from etcdx.mvcc.revision import backend_key, pack
from etcdx.mvcc.schema import KEY_DB, META_CONSISTENT_INDEX, META_TERM

_OPS = st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c"]), st.booleans()), min_size=1, max_size=40)


def _build(ops: list[tuple[bytes, bool]]) -> tuple[KeyIndex, int]:
    index, live, main = KeyIndex(), set(), 1
    for key, delete in ops:
        if delete and key not in live:
            continue
        main += 1
        if delete:
            index.tombstone(key, pack(main, 0))
            live.discard(key)
        else:
            index.put(key, pack(main, 0))
            live.add(key)
    return index, main


@settings(max_examples=200, deadline=None)
@given(_OPS, st.data())
def test_keep_is_what_a_compaction_keeps_and_changes_nothing(ops, data):
    index, last = _build(ops)
    twin, _ = _build(ops)
    at = data.draw(st.integers(1, last))
    kept = index.keep(at)
    visible = [index.range(b"a", b"d", rev) for rev in range(1, last + 1)]
    assert visible == [twin.range(b"a", b"d", rev) for rev in range(1, last + 1)]  # keep changed nothing
    assert kept == twin.compact(at)


def _backend_with(revisions: list[int]) -> MemoryBackend:
    backend = MemoryBackend()
    with backend.begin_write() as txn:
        for main in revisions:
            txn.put(KEY_DB, backend_key(pack(main, 0)), b"value %d" % main)
        rows.put_meta_int(txn, META_CONSISTENT_INDEX, 77)
        rows.put_meta_int(txn, META_TERM, 3)
    return backend


def _expected(revisions: list[int]) -> int:
    crc = crc32c.crc32c(KEY_DB)
    for main in revisions:
        crc = crc32c.crc32c(b"value %d" % main, crc32c.crc32c(backend_key(pack(main, 0)), crc))
    return crc


def test_kv_hash_rows_up_to_the_revision_and_kept_rows_below_the_compaction():
    backend = _backend_with([2, 3, 5, 8])
    with backend.begin_read() as view:
        assert kv_hash.kv_hash(view, 8, -1, set()) == _expected([2, 3, 5, 8])
        assert kv_hash.kv_hash(view, 5, -1, set()) == _expected([2, 3, 5])
        assert kv_hash.kv_hash(view, 8, 3, {pack(3, 0)}) == _expected([3, 5, 8])  # 2 is not kept
        assert kv_hash.kv_hash(view, 8, 3, set()) == _expected([2, 3, 5, 8])  # etcd: an empty keep skips nothing


def test_backend_hash_leaves_out_the_consistent_index_and_term():
    one, two = _backend_with([2]), _backend_with([2])
    with two.begin_write() as txn:
        rows.put_meta_int(txn, META_CONSISTENT_INDEX, 900)
        rows.put_meta_int(txn, META_TERM, 9)
    with one.begin_read() as a, two.begin_read() as b:
        assert kv_hash.backend_hash(a) == kv_hash.backend_hash(b)
    with two.begin_write() as txn:
        rows.put_lease(txn, 1, 10)
    with one.begin_read() as a, two.begin_read() as b:
        assert kv_hash.backend_hash(a) != kv_hash.backend_hash(b)

"""The storage contract of tables.py, kept alike by the LMDB file and the memory backend: ordered tables,
a write transaction that reads its own writes and that nothing else sees before its commit, read views
that keep the state of their start, abort, and the context-manager forms."""

from __future__ import annotations

import pytest

from etcdx.mvcc.schema import ALARM_DB, KEY_DB, LEASE_DB
from tests.support.store import BACKENDS, open_backend, table_rows


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    b = open_backend(request.param, str(tmp_path))
    yield b
    b.close()


def test_tables_are_ordered_by_unsigned_bytes_and_separate(backend):
    with backend.begin_write() as txn:
        for key in (b"b", b"\xff", b"a", b"a\x00", b"\x00", b"\x80"):
            txn.put(KEY_DB, key, b"v" + key)
        txn.put(LEASE_DB, b"a", b"lease")
    with backend.begin_read() as view:
        assert [k for k, _ in view.scan(KEY_DB)] == [b"\x00", b"a", b"a\x00", b"b", b"\x80", b"\xff"]
        assert list(view.scan(KEY_DB, b"a\x01")) == [(b"b", b"vb"), (b"\x80", b"v\x80"), (b"\xff", b"v\xff")]
        assert list(view.keys(KEY_DB, b"a", b"b")) == [b"a", b"a\x00"]
        assert list(view.keys(KEY_DB, stop=b"a")) == [b"\x00"]
        assert list(view.scan(KEY_DB, b"\xff\x00")) == []
        assert view.get_many(KEY_DB, [b"b", b"missing", b"a"]) == [b"vb", b"va"]
        assert view.get(KEY_DB, b"missing") is None
        assert view.get(LEASE_DB, b"a") == b"lease" and list(view.scan(ALARM_DB)) == []


def test_keys_are_one_to_511_bytes(backend):
    with pytest.raises((ValueError, *backend.storage_errors)), backend.begin_write() as txn:
        txn.put(KEY_DB, b"", b"v")
    with pytest.raises((ValueError, *backend.storage_errors)), backend.begin_write() as txn:
        txn.put(KEY_DB, b"k" * 512, b"v")
    with backend.begin_write() as txn:
        txn.put(KEY_DB, b"k" * 511, b"v")
    assert table_rows(backend, KEY_DB) == [(b"k" * 511, b"v")]


def test_a_write_is_seen_by_its_transaction_and_by_nothing_else_until_it_commits(backend):
    with backend.begin_write() as txn:
        txn.put(KEY_DB, b"k", b"1")
    before = backend.begin_read()
    txn = backend.begin_write()
    txn.put(KEY_DB, b"k", b"2")
    txn.put(KEY_DB, b"new", b"n")
    assert txn.delete(KEY_DB, b"k") is True and txn.delete(KEY_DB, b"k") is False
    txn.put(KEY_DB, b"k", b"3")
    assert list(txn.scan(KEY_DB)) == [(b"k", b"3"), (b"new", b"n")]
    with backend.begin_read() as during:
        assert list(during.scan(KEY_DB)) == [(b"k", b"1")]
    txn.commit()
    assert list(before.scan(KEY_DB)) == [(b"k", b"1")]  # a view keeps the state of its start
    before.end()
    assert table_rows(backend, KEY_DB) == [(b"k", b"3"), (b"new", b"n")]


def test_an_abort_drops_the_transaction(backend):
    with backend.begin_write() as txn:
        txn.put(KEY_DB, b"kept", b"1")
    txn = backend.begin_write()
    txn.put(KEY_DB, b"dropped", b"1")
    txn.delete(KEY_DB, b"kept")
    txn.abort()
    with pytest.raises(RuntimeError), backend.begin_write() as txn:
        txn.put(KEY_DB, b"dropped", b"2")
        raise RuntimeError("the with block fails: the transaction aborts")
    assert table_rows(backend, KEY_DB) == [(b"kept", b"1")]


def test_get_many_reads_the_last_committed_state_whenever_it_is_called(backend):
    """The backend's own get_many (reads outside a write; the LMDB file reuses one read transaction between calls)
    answers from the last commit: before a write, while one is open (not its writes), after its commit or abort."""
    with backend.begin_write() as txn:
        txn.put(KEY_DB, b"a", b"1")
        txn.put(KEY_DB, b"b", b"1")
    assert backend.get_many(KEY_DB, [b"a"]) == [b"1"]
    txn = backend.begin_write()
    txn.put(KEY_DB, b"a", b"2")
    assert backend.get_many(KEY_DB, [b"a", b"b"]) == [b"1", b"1"]  # read while the write is open
    txn.commit()
    assert backend.get_many(KEY_DB, [b"a"]) == [b"2"] and backend.get_many(KEY_DB, [b"a", b"b"]) == [b"2", b"1"]
    txn = backend.begin_write()
    txn.delete(KEY_DB, b"b")
    txn.abort()
    assert backend.get_many(KEY_DB, [b"b", b"missing"]) == [b"1"] and backend.get_many(KEY_DB, [b"missing"]) == []
    with backend.begin_write() as txn:
        txn.delete(KEY_DB, b"b")
    assert backend.get_many(KEY_DB, [b"b"]) == [] and backend.get_many(KEY_DB, [b"a", b"b"]) == [b"2"]

"""The key index (etcd's treeIndex shape): generations, reads at a revision, compaction rules.

Pure: no backend. Revisions are packed (main, sub) ints.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx.mvcc.key_index import KeyIndex
from etcdx.mvcc.revision import backend_key, main_of, pack, parse_backend_key


def test_backend_keys_are_etcds_17_byte_form_and_sort_like_revisions():
    assert backend_key(pack(2, 1)) == b"\0" * 7 + b"\x02_" + b"\0" * 7 + b"\x01"
    assert backend_key(pack(2, 1), tombstone=True) == backend_key(pack(2, 1)) + b"t"
    assert parse_backend_key(backend_key(pack(9, 3), tombstone=True)) == (pack(9, 3), True)
    revisions = [pack(1, 5), pack(2, 0), pack(2, 1), pack(256, 0)]
    assert sorted(revisions, key=backend_key) == sorted(revisions)
    assert main_of(pack(7, 3)) == 7


@pytest.fixture
def index():
    """k: put @2, @3.0, tombstone @4, put @6; j: put @3.1."""
    ix = KeyIndex()
    ix.put(b"k", pack(2, 0))
    ix.put(b"k", pack(3, 0))
    ix.put(b"j", pack(3, 1))
    ix.tombstone(b"k", pack(4, 0))
    ix.put(b"k", pack(6, 0))
    return ix


def test_put_returns_create_revision_and_version_per_generation():
    ix = KeyIndex()
    assert ix.put(b"k", pack(2, 0)) == (2, 1)
    assert ix.put(b"k", pack(3, 0)) == (2, 2)
    ix.tombstone(b"k", pack(4, 0))
    assert ix.put(b"k", pack(5, 1)) == (5, 1)


@pytest.mark.parametrize(
    "at, expected",
    [
        (1, None),
        (2, (pack(2, 0), 2, 1)),
        (3, (pack(3, 0), 2, 2)),
        (4, None),  # the tombstone hides the key
        (5, None),
        (6, (pack(6, 0), 6, 1)),
        (99, (pack(6, 0), 6, 1)),
    ],
)
def test_get_at_a_revision(index, at, expected):
    assert index.get(b"k", at) == expected


def test_range_and_live_keys(index):
    assert index.range(b"a", b"", 3) == [(b"j", pack(3, 1)), (b"k", pack(3, 0))]
    assert index.range(b"a", b"", 5) == [(b"j", pack(3, 1))]
    assert index.range(b"j", b"k", 6) == [(b"j", pack(3, 1))]
    assert index.range(b"k", None, 6) == [(b"k", pack(6, 0))]
    assert index.live_keys(b"a", b"") == [b"j", b"k"]
    index.tombstone(b"k", pack(7, 0))
    assert index.live_keys(b"a", b"") == [b"j"]
    assert index.live_keys(b"k", None) == []


def test_compact_keeps_the_newest_revision_at_or_below(index):
    assert index.compact(3) == {pack(3, 0), pack(3, 1)}
    assert index.get(b"k", 3) == (pack(3, 0), 2, 2)
    assert index.get(b"k", 6) == (pack(6, 0), 6, 1)


def test_compact_drops_a_generation_that_ended_at_or_before(index):
    assert index.compact(4) == {pack(3, 1)}  # k's newest <= 4 is its tombstone: it goes
    assert index.get(b"k", 4) is None and index.get(b"k", 6) == (pack(6, 0), 6, 1)
    assert index.compact(5) == {pack(3, 1)}
    assert index.compact(6) == {pack(3, 1), pack(6, 0)}


def test_a_key_whose_history_is_all_compacted_leaves_the_index():
    ix = KeyIndex()
    ix.put(b"k", pack(2, 0))
    ix.tombstone(b"k", pack(3, 0))
    assert ix.compact(3) == set() and len(ix) == 0


def test_a_generation_ending_after_the_compaction_keeps_its_value_and_tombstone():
    ix = KeyIndex()
    ix.put(b"k", pack(2, 0))
    ix.put(b"k", pack(3, 0))
    ix.tombstone(b"k", pack(5, 0))
    assert ix.compact(4) == {pack(3, 0)}
    assert ix.get(b"k", 4) == (pack(3, 0), 2, 2)
    assert ix.compact(5) == set() and len(ix) == 0


def test_restore_uses_the_stored_create_revision_and_version():
    ix = KeyIndex()
    ix.restore_tombstone(b"gone", pack(2, 0))  # a tombstone alone (its puts compacted) is ignored
    ix.restore(b"k", pack(7, 0), created=3, version=4)
    ix.restore(b"k", pack(8, 0), created=3, version=5)
    ix.restore_tombstone(b"k", pack(9, 0))
    assert len(ix) == 1
    assert ix.get(b"k", 8) == (pack(8, 0), 3, 5)
    assert ix.get(b"k", 9) is None
    assert ix.put(b"k", pack(10, 0)) == (10, 1)


def test_restore_rebuilds_the_index_that_puts_built(index):
    """The restore path (a key read back once, then again: its compact form expands) answers as the puts did."""
    restored = KeyIndex()
    restored.restore(b"k", pack(2, 0), 2, 1)
    restored.restore(b"k", pack(3, 0), 2, 2)
    restored.restore(b"j", pack(3, 1), 3, 1)
    restored.restore_tombstone(b"k", pack(4, 0))
    restored.restore(b"k", pack(6, 0), 6, 1)
    for at in range(1, 8):
        assert restored.range(b"a", b"", at) == index.range(b"a", b"", at)
        for key in (b"j", b"k"):
            assert restored.get(key, at) == index.get(key, at)
    assert restored.compact(5) == index.compact(5)
    assert restored.range(b"a", b"", 9) == index.range(b"a", b"", 9)


@pytest.mark.parametrize("at", range(1, 8))
def test_count_is_the_length_of_range(index, at):
    for key, end in [(b"a", b""), (b"k", None), (b"x", None), (b"j", b"k"), (b"a", b"z"), (b"k", b"")]:
        assert index.count(key, end, at) == len(index.range(key, end, at))


@pytest.mark.parametrize("at", range(1, 8))
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_page_is_the_start_of_range_and_its_length(index, at, limit):
    for key, end in [(b"a", b""), (b"k", None), (b"x", None), (b"j", b"k"), (b"a", b"z"), (b"k", b"")]:
        whole = index.range(key, end, at)
        assert index.page(key, end, at, limit) == (whole[:limit], len(whole))


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 30)), min_size=1, max_size=120),
    limit=st.integers(1, 40),
    data=st.data(),
)
def test_page_matches_range_over_random_histories(ops, limit, data):
    """Keys written once (one-revision records), rewritten, deleted and created again: a page is always the
    first ``limit`` pairs of the range, with the range's full length as its count, at every revision."""
    ix = KeyIndex()
    live: set[bytes] = set()
    for main, (delete, n) in enumerate(ops, start=2):
        key = b"key/%02d" % n
        if delete and key in live:
            ix.tombstone(key, pack(main, 0))
            live.discard(key)
        elif not delete:
            ix.put(key, pack(main, 0))
            live.add(key)
    at = data.draw(st.integers(1, len(ops) + 2))
    written = sorted({b"key/%02d" % n for _, n in ops})
    for key, end in [(b"key/", b"key0"), (b"key/05", b"key/20"), (b"a", b""), (b"key/07", None)]:
        whole = ix.range(key, end, at)
        assert ix.page(key, end, at, limit) == (whole[:limit], len(whole))
        assert ix.count(key, end, at) == len(whole)
        # against each key's own history (``get``), not the walk: the keys of the range visible at ``at``
        if end is None:
            in_range = [k for k in written if k == key]
        else:
            in_range = [k for k in written if key <= k and (not end or k < end)]
        assert whole == [(k, found[0]) for k in in_range if (found := ix.get(k, at)) is not None]


def test_the_index_keeps_its_per_key_objects_out_of_the_cyclic_collector():
    """Compiled, every per-key object (one-revision records, histories, ended generations and their lists) is
    untracked, so a collection of the oldest generation walks none of them however many keys were written; the
    pure-Python twin cannot untrack and leaves them all tracked."""
    import gc

    from etcdx.mvcc import key_index
    from etcdx.mvcc.key_index import KeyHistory, SingleRevision

    ix = KeyIndex()
    for n in range(400):
        ix.put(b"k%03d" % n, pack(n + 2, 0))
    for n in range(0, 400, 2):
        ix.put(b"k%03d" % n, pack(1000 + n, 0))  # a history
    for n in range(0, 400, 4):
        ix.tombstone(b"k%03d" % n, pack(2000 + n, 0))  # an ended generation
    for n in range(0, 400, 8):
        ix.put(b"k%03d" % n, pack(3000 + n, 0))  # created again
    objects = []
    for _, history in ix._tree.items():
        objects.append(history)
        if type(history) is KeyHistory:
            objects.append(history.revs)
            if history.past is not None:
                objects += [history.past, *history.past, *(gen.revs for gen in history.past)]
    assert {type(o) for o in objects} >= {SingleRevision, KeyHistory, list, key_index.Generation}
    tracked = sum(gc.is_tracked(o) for o in objects)
    if key_index.untrack.__module__ == "etcdx._native._gctrack":
        assert tracked == 0
    else:
        assert tracked == len(objects)

"""go_sort: Go 1.16's sort.Sort, which etcd 3.5.1 uses for Range results.

Tie orders are checked against etcd itself in test_mvcc_kvstore; here: it is a correct sort of any
input (insertion runs, quicksort with the 40+ element pivot, heapsort fallback on adversarial input).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from etcdx.mvcc.gosort import go_sort


@given(st.lists(st.integers(0, 6), max_size=300), st.booleans())
def test_sorts_any_input_and_keeps_items_with_their_keys(keys, descending):
    items = list(range(len(keys)))
    original = list(keys)
    go_sort(items, keys, descending=descending)
    assert keys == sorted(original, reverse=descending)
    assert sorted(items) == list(range(len(original)))
    assert [original[i] for i in items] == keys


def test_a_small_run_without_gap_six_inversions_keeps_tie_order():
    keys = [2, 1, 2, 1, 2, 1, 2, 1]
    items = list("abcdefgh")
    go_sort(items, keys)
    assert items == list("bdfhaceg")


def test_large_sawtooth_input():
    keys = [(i * 7919) % 1000 for i in range(5000)]
    items = list(range(5000))
    go_sort(items, keys, descending=True)
    assert keys == sorted(keys, reverse=True)

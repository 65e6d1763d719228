"""The ordering etcd's Range gives to ties: Go 1.16's sort.Sort, an unstable introsort.

etcd 3.5.1 (built with Go 1.16) sorts Range results with sort.Sort, so keys whose sort target is
equal come back in the order that algorithm leaves them in: quicksort with median-of-three pivots
and a duplicate guard, a heapsort fallback at depth 2*ceil(lg(n+1)), and for runs of at most 12
elements a shell pass with gap 6 followed by insertion sort. Reproducing it is what makes etcdx's
responses byte-identical to etcd's; a stable sort would differ from n = 7 on.

``go_sort(items, keys, descending)`` sorts ``items`` in place by the parallel list ``keys``.
"""

from __future__ import annotations


def go_sort(items: list, keys: list, descending: bool = False) -> None:
    if descending:

        def less(i: int, j: int) -> bool:
            return keys[j] < keys[i]
    else:

        def less(i: int, j: int) -> bool:
            return keys[i] < keys[j]

    def swap(i: int, j: int) -> None:
        items[i], items[j] = items[j], items[i]
        keys[i], keys[j] = keys[j], keys[i]

    n = len(items)
    depth = 0
    while n >> depth:
        depth += 1
    _quick_sort(less, swap, 0, n, depth * 2)


def _insertion_sort(less, swap, a: int, b: int) -> None:
    for i in range(a + 1, b):
        j = i
        while j > a and less(j, j - 1):
            swap(j, j - 1)
            j -= 1


def _sift_down(less, swap, lo: int, hi: int, first: int) -> None:
    root = lo
    while True:
        child = 2 * root + 1
        if child >= hi:
            return
        if child + 1 < hi and less(first + child, first + child + 1):
            child += 1
        if not less(first + root, first + child):
            return
        swap(first + root, first + child)
        root = child


def _heap_sort(less, swap, a: int, b: int) -> None:
    first, hi = a, b - a
    for i in range((hi - 1) // 2, -1, -1):
        _sift_down(less, swap, i, hi, first)
    for i in range(hi - 1, -1, -1):
        swap(first, first + i)
        _sift_down(less, swap, 0, i, first)


def _median_of_three(less, swap, m1: int, m0: int, m2: int) -> None:
    if less(m1, m0):
        swap(m1, m0)
    if less(m2, m1):
        swap(m2, m1)
        if less(m1, m0):
            swap(m1, m0)


def _do_pivot(less, swap, lo: int, hi: int) -> tuple[int, int]:
    m = (lo + hi) >> 1
    if hi - lo > 40:
        s = (hi - lo) // 8
        _median_of_three(less, swap, lo, lo + s, lo + 2 * s)
        _median_of_three(less, swap, m, m - s, m + s)
        _median_of_three(less, swap, hi - 1, hi - 1 - s, hi - 1 - 2 * s)
    _median_of_three(less, swap, lo, m, hi - 1)
    pivot = lo
    a, c = lo + 1, hi - 1
    while a < c and less(a, pivot):
        a += 1
    b = a
    while True:
        while b < c and not less(pivot, b):
            b += 1
        while b < c and less(pivot, c - 1):
            c -= 1
        if b >= c:
            break
        swap(b, c - 1)
        b += 1
        c -= 1
    protect = hi - c < 5
    if not protect and hi - c < (hi - lo) // 4:
        dups = 0
        if not less(pivot, hi - 1):
            swap(c, hi - 1)
            c += 1
            dups += 1
        if not less(b - 1, pivot):
            b -= 1
            dups += 1
        if not less(m, pivot):
            swap(m, b - 1)
            b -= 1
            dups += 1
        protect = dups > 1
    if protect:
        while True:
            while a < b and not less(b - 1, pivot):
                b -= 1
            while a < b and less(a, pivot):
                a += 1
            if a >= b:
                break
            swap(a, b - 1)
            a += 1
            b -= 1
    swap(pivot, b - 1)
    return b - 1, c


def _quick_sort(less, swap, a: int, b: int, max_depth: int) -> None:
    while b - a > 12:
        if max_depth == 0:
            _heap_sort(less, swap, a, b)
            return
        max_depth -= 1
        mlo, mhi = _do_pivot(less, swap, a, b)
        if mlo - a < b - mhi:
            _quick_sort(less, swap, a, mlo, max_depth)
            a = mhi
        else:
            _quick_sort(less, swap, mhi, b, max_depth)
            b = mlo
    if b - a > 1:
        for i in range(a + 6, b):
            if less(i, i - 6):
                swap(i, i - 6)
        _insertion_sort(less, swap, a, b)

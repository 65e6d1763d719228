"""SortedMap (the key index's B+tree), compiled vs twin, at 1e3 to 1e6 keys.

Run: cd /work/main && python setup.py build_ext --inplace && pytest bench/test_bench_btree.py --benchmark-only
Each group holds one case at one size, so the compiled and twin figures sit side by side. The maps for
lookup, irange and compaction are built once per module and restored after each compaction round.
"""

from __future__ import annotations

import importlib
import random

import pytest

IMPLEMENTATIONS = {"compiled": "etcdx._native._btree", "twin": "etcdx._native.btree_py"}
SIZES = {"1e3": 1_000, "1e4": 10_000, "1e5": 100_000, "1e6": 1_000_000}
LOOKUPS = 10_000
SCANS, SCAN_LENGTH = 100, 100


def rounds_for(n: int) -> int:
    """Few rounds for the big maps (a twin round at 1e6 takes seconds), more where rounds are cheap."""
    return 2 if n >= 1_000_000 else 4 if n >= 100_000 else 10


def etcd_like_keys(n: int) -> list[bytes]:
    """n distinct keys shaped like Kubernetes' registry keys, in a fixed random order."""
    rng = random.Random(n)
    keys = [b"/registry/pods/namespace-%03d/pod-%09d" % (i % 211, i) for i in range(n)]
    rng.shuffle(keys)
    return keys


@pytest.fixture(params=list(IMPLEMENTATIONS))
def implementation(request):
    return request.param


@pytest.fixture(params=list(SIZES.values()), ids=list(SIZES))
def size(request):
    return request.param


@pytest.fixture(scope="module")
def keys_by_size():
    cache: dict[int, list[bytes]] = {}

    def keys(n: int) -> list[bytes]:
        if n not in cache:
            cache[n] = etcd_like_keys(n)
        return cache[n]

    return keys


@pytest.fixture(scope="module")
def built_maps(keys_by_size):
    """(implementation, n) -> a map of the n keys, each key's value its position in the insert order."""
    cache: dict[tuple[str, int], object] = {}

    def built(implementation: str, n: int):
        if (implementation, n) not in cache:
            tree = importlib.import_module(IMPLEMENTATIONS[implementation]).SortedMap()
            for position, key in enumerate(keys_by_size(n)):
                tree[key] = position
            cache[implementation, n] = tree
        return cache[implementation, n]

    return built


def test_insert(benchmark, implementation, size, keys_by_size):
    sorted_map_class = importlib.import_module(IMPLEMENTATIONS[implementation]).SortedMap
    keys = keys_by_size(size)

    def insert_all():
        tree = sorted_map_class()
        for position, key in enumerate(keys):
            tree[key] = position
        return tree

    benchmark.group = f"insert {size} keys"
    tree = benchmark.pedantic(insert_all, rounds=rounds_for(size), iterations=1)
    assert len(tree) == size


def test_lookup(benchmark, implementation, size, keys_by_size, built_maps):
    tree = built_maps(implementation, size)
    rng = random.Random(1)
    probes = [rng.choice(keys_by_size(size)) for _ in range(LOOKUPS)]

    def look_up():
        get = tree.get
        return sum(get(key) is not None for key in probes)

    benchmark.group = f"lookup {LOOKUPS} keys in {size}"
    assert benchmark.pedantic(look_up, rounds=10, iterations=1) == LOOKUPS


def test_irange(benchmark, implementation, size, keys_by_size, built_maps):
    tree = built_maps(implementation, size)
    ordered = sorted(keys_by_size(size))
    rng = random.Random(2)
    bounds = [(ordered[i], ordered[i + SCAN_LENGTH]) for i in (rng.randrange(size - SCAN_LENGTH) for _ in range(SCANS))]

    def scan():
        seen = 0
        for start, end in bounds:
            for _ in tree.irange(start, end):
                seen += 1
        return seen

    benchmark.group = f"irange {SCANS} x {SCAN_LENGTH} keys in {size}"
    assert benchmark.pedantic(scan, rounds=10, iterations=1) == SCANS * SCAN_LENGTH


def test_compaction(benchmark, implementation, size, built_maps):
    """As the key index compacts: scan every key, then delete the three in four found emptied."""
    tree = built_maps(implementation, size)
    emptied: list[tuple[bytes, int]] = []

    def restore():
        for key, position in emptied:
            tree[key] = position
        emptied.clear()
        return (), {}

    def compact():
        emptied.extend((key, position) for key, position in tree.items() if position % 4)
        for key, _ in emptied:
            del tree[key]

    benchmark.group = f"compaction (delete 3/4) of {size}"
    benchmark.pedantic(compact, setup=restore, rounds=rounds_for(size), iterations=1)
    assert len(tree) == size - len(emptied)
    restore()
    assert len(tree) == size

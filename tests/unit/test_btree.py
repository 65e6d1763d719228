"""SortedMap (the key index's B+tree), compiled and twin: behaves as a dict kept in bytewise key order,
and keeps the B+tree shape (fill, balance, linked leaves) through splits and merges at every level.

The compiled module is imported directly: if it was not built (`python setup.py build_ext --inplace`),
its tests fail instead of skipping.
"""

from __future__ import annotations

import gc
import importlib
import math
import random
import weakref

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

IMPLEMENTATIONS = ["etcdx._native._btree", "etcdx._native.btree_py"]


@pytest.fixture(params=IMPLEMENTATIONS)
def sorted_map_class(request):
    return importlib.import_module(request.param).SortedMap


def model_range(model: dict, start: bytes, end: bytes | None) -> list:
    return sorted((k, v) for k, v in model.items() if k >= start and (end is None or k < end))


def check_structure(tree) -> int:
    """Asserts the B+tree invariants of ``tree`` and returns its height (1 = a lone leaf).

    Sorted keys within bounds set by the separators; every node at most ``order`` keys; every node but
    the root at least order // 2 keys (leaf) or children (inner); all leaves at one depth; the leaf
    chain visits the leaves left to right; the key count equals len(tree).
    """
    order, minimum = tree._order, tree._order // 2
    leaves: list = []
    leaf_depths: set[int] = set()

    def walk(node, low: bytes | None, high: bytes | None, depth: int, is_root: bool) -> None:
        keys = list(node.keys)
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        assert len(keys) <= order
        if keys:
            assert low is None or keys[0] >= low
            assert high is None or keys[-1] < high
        if hasattr(node, "children"):
            children = list(node.children)
            assert len(children) == len(keys) + 1
            assert len(children) >= (2 if is_root else minimum)
            bounds = [low, *keys, high]
            for i, child in enumerate(children):
                walk(child, bounds[i], bounds[i + 1], depth + 1, False)
        else:
            assert len(node.values) == len(keys)
            assert is_root or len(keys) >= minimum
            leaves.append(node)
            leaf_depths.add(depth)

    walk(tree._root, None, None, 1, True)
    assert len(leaf_depths) == 1
    chained = []
    leaf = leaves[0]
    while leaf is not None:
        chained.append(leaf)
        leaf = leaf.next
    assert chained == leaves
    assert sum(len(leaf.keys) for leaf in leaves) == len(tree)
    return leaf_depths.pop()


def test_empty_map(sorted_map_class):
    m = sorted_map_class()
    assert len(m) == 0
    assert list(m.items()) == []
    assert list(m.irange(b"")) == []
    assert list(m.irange(b"", b"\xff")) == []
    assert m.get(b"x") is None
    assert m.get(b"x", 5) == 5
    assert b"x" not in m
    with pytest.raises(KeyError):
        m[b"x"]
    with pytest.raises(KeyError):
        del m[b"x"]
    with pytest.raises(KeyError):
        m.pop(b"x")
    assert m.pop(b"x", 7) == 7
    assert check_structure(m) == 1


def test_edge_keys_and_bounds(sorted_map_class):
    edge_keys = [b"", b"\x00", b"\x00\x00", b"\xff", b"\xff\xff", b"a", b"a\x00", b"a\xff", b"\x7f", b"\x80"]
    m = sorted_map_class(4)
    for key in edge_keys:
        m[key] = key
    assert [k for k, _ in m.items()] == sorted(edge_keys)
    assert [k for k, _ in m.irange(b"a", b"a\xff")] == [b"a", b"a\x00"]
    assert [k for k, _ in m.irange(b"\xff")] == [b"\xff", b"\xff\xff"]
    assert [k for k, _ in m.irange(b"", b"\x00")] == [b""]
    assert [k for k, _ in m.irange(b"\x7f", b"\x81")] == [b"\x7f", b"\x80"]
    assert list(m.irange(b"b", b"a")) == []
    assert list(m.irange(b"a", b"a")) == []
    assert list(m.irange(b"\xff\xff\xff")) == []
    assert m[b""] == b"" and m[b"\xff\xff"] == b"\xff\xff"
    assert m.pop(b"") == b""
    assert b"" not in m
    check_structure(m)


def test_values_are_any_object_including_none(sorted_map_class):
    m = sorted_map_class()
    m[b"k"] = None
    assert b"k" in m
    assert m[b"k"] is None
    assert m.get(b"k", 1) is None
    assert m.pop(b"k", 1) is None
    assert b"k" not in m


def test_overwrite_keeps_one_entry(sorted_map_class):
    m = sorted_map_class()
    m[b"k"] = 1
    m[b"k"] = 2
    assert len(m) == 1
    assert list(m.items()) == [(b"k", 2)]


def test_bytes_like_keys_are_stored_as_bytes(sorted_map_class):
    m = sorted_map_class()
    m[bytearray(b"b")] = 1
    m[memoryview(b"a")] = 2
    assert list(m.items()) == [(b"a", 2), (b"b", 1)]
    assert all(type(k) is bytes for k, _ in m.items())
    assert m[bytearray(b"a")] == 2
    assert list(m.irange(bytearray(b"a"), memoryview(b"b"))) == [(b"a", 2)]


def test_key_error_carries_the_key(sorted_map_class):
    with pytest.raises(KeyError) as raised:
        sorted_map_class()[b"missing"]
    assert raised.value.args == (b"missing",)


def test_order_below_four_is_refused(sorted_map_class):
    with pytest.raises(ValueError):
        sorted_map_class(3)


def test_deleted_values_are_released(sorted_map_class):
    class Value:
        pass

    m = sorted_map_class(4)
    refs = []
    for i in range(200):
        value = Value()
        refs.append(weakref.ref(value))
        m[b"%04d" % i] = value
    del value
    for i in range(200):
        del m[b"%04d" % i]
    gc.collect()
    assert all(ref() is None for ref in refs)


@pytest.mark.parametrize("order", [4, 5, 64])
def test_grow_and_shrink_keep_shape(sorted_map_class, order):
    """Thousands of keys in random order: the height stays logarithmic, and deleting every key leaves
    a single empty leaf (merges free the nodes)."""
    rng = random.Random(order)
    keys = [rng.randbytes(rng.randint(0, 6)) for _ in range(6000)]
    m, model = sorted_map_class(order), {}
    for step, key in enumerate(keys):
        m[key] = model[key] = step
        if step % 1000 == 0:
            check_structure(m)
    height = check_structure(m)
    assert height >= 3
    assert height <= 1 + math.log(len(model) / 2, order // 2) + 1
    assert list(m.items()) == sorted(model.items())
    doomed = list(model)
    rng.shuffle(doomed)
    for step, key in enumerate(doomed):
        assert m.pop(key) == model.pop(key)
        if step % 1000 == 0:
            check_structure(m)
            assert list(m.items()) == sorted(model.items())
    assert len(m) == 0 and list(m.items()) == []
    assert check_structure(m) == 1


def test_ascending_and_descending_bulk_deletes(sorted_map_class):
    """Compaction deletes keys in ascending order; ranges deleted from either end drain whole subtrees."""
    m = sorted_map_class(4)
    keys = [b"/registry/%05d" % i for i in range(3000)]
    for key in keys:
        m[key] = key
    for key in keys[:1000]:
        del m[key]
    check_structure(m)
    for key in reversed(keys[2000:]):
        del m[key]
    check_structure(m)
    assert [k for k, _ in m.items()] == keys[1000:2000]
    assert [k for k, _ in m.irange(b"/registry/01500", b"/registry/01503")] == keys[1500:1503]


def test_two_implementations_agree():
    compiled = importlib.import_module("etcdx._native._btree").SortedMap(4)
    twin = importlib.import_module("etcdx._native.btree_py").SortedMap(4)
    rng = random.Random(7)
    for step in range(4000):
        key = rng.randbytes(rng.randint(0, 2))
        if rng.random() < 0.6:
            compiled[key] = twin[key] = step
        else:
            assert compiled.pop(key, None) == twin.pop(key, None)
    assert list(compiled.items()) == list(twin.items())
    assert check_structure(compiled) == check_structure(twin)


KEY_POOL = [b"", b"\x00", b"\xff", b"\xff\xff", b"a", b"a\x00", b"ab", b"b"]
keys = st.one_of(st.sampled_from(KEY_POOL), st.binary(max_size=3))


def make_machine(module: str, order: int) -> type[RuleBasedStateMachine]:
    cls = importlib.import_module(module).SortedMap

    class SortedMapAgainstDict(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.map = cls(order)
            self.model: dict[bytes, int] = {}

        @rule(key=keys, value=st.integers())
        def put(self, key, value):
            self.map[key] = value
            self.model[key] = value

        @rule(batch=st.lists(st.binary(min_size=1, max_size=3), min_size=10, max_size=60), value=st.integers())
        def put_many(self, batch, value):
            for key in batch:
                self.map[key] = self.model[key] = value

        @rule(key=keys)
        def pop(self, key):
            assert self.map.pop(key, None) == self.model.pop(key, None)

        @rule(key=keys)
        def delete(self, key):
            if key in self.model:
                del self.map[key]
                del self.model[key]
            else:
                with pytest.raises(KeyError):
                    del self.map[key]

        @rule(start=keys, end=st.none() | keys)
        def delete_range(self, start, end):
            doomed = [k for k, _ in self.map.irange(start, end)]
            assert doomed == [k for k, _ in model_range(self.model, start, end)]
            for key in doomed:
                del self.map[key]
                del self.model[key]

        @rule(key=keys)
        def get(self, key):
            assert self.map.get(key) == self.model.get(key)
            assert (key in self.map) == (key in self.model)
            if key in self.model:
                assert self.map[key] == self.model[key]

        @rule(start=keys, end=st.none() | keys)
        def scan(self, start, end):
            assert list(self.map.irange(start, end)) == model_range(self.model, start, end)

        @invariant()
        def same_contents_and_shape(self):
            assert len(self.map) == len(self.model)
            assert list(self.map.items()) == sorted(self.model.items())
            check_structure(self.map)

    return SortedMapAgainstDict


@pytest.mark.parametrize("order", [4, 5])
@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_stateful_against_dict_model(module, order):
    machine = make_machine(module, order)
    machine.TestCase.settings = settings(max_examples=40, stateful_step_count=150, deadline=None)
    machine.TestCase().runTest()


class _One:
    """A one-revision value, as the key index's SingleRevision."""

    __slots__ = ("rev",)

    def __init__(self, rev: int) -> None:
        self.rev = rev


class _History:
    """A history value, as the key index's KeyHistory: ``revs`` the current generation's (empty: deleted
    now), ``older`` the revision ``find`` gives when the newest one is not visible (None: nothing visible)."""

    __slots__ = ("revs", "older", "asked")

    def __init__(self, revs: list[int], older: int | None) -> None:
        self.revs, self.older, self.asked = revs, older, 0

    def find(self, at_main: int):
        self.asked += 1
        if self.revs and self.revs[-1] <= at_main * 10 + 9:
            return self.revs[-1], 0, 0
        return None if self.older is None else (self.older, 0, 0)


def model_visible(model: dict, start: bytes, end: bytes | None, bound: int, limit: int, at_main: int):
    visible = []
    for key, value in model_range(model, start, end):
        if type(value) is _One:
            if value.rev <= bound:
                visible.append((key, value.rev))
        elif (found := value.find(at_main)) is not None:
            visible.append((key, found[0]))
    return visible[:limit], len(visible)


def test_visible_page_is_the_key_index_walk(sorted_map_class):
    """The first ``limit`` visible (key, revision) pairs and the count of all, for one-revision values (read
    here) and histories (from their newest revision when visible, else asked ``find``), at any bound."""
    rng = random.Random(11)
    m, model = sorted_map_class(4), {}
    for _ in range(300):
        key = b"k%03d" % rng.randrange(1000)
        if rng.random() < 0.5:
            value = _One(rng.randrange(100))
        else:
            revs = sorted(rng.sample(range(100), rng.randrange(3)))
            value = _History(revs, rng.choice([None, rng.randrange(100)]))
        m[key] = model[key] = value
    for at_main in (0, 3, 5, 9, 10):
        bound = at_main * 10 + 9  # the "packed" revisions of this test: main * 10 + sub
        for start, end in [(b"", None), (b"k1", b"k5"), (b"k5", b"k50"), (b"z", None), (b"k2", b"k2")]:
            for limit in (0, 1, 7, 1000):
                assert m.visible_page(start, end, bound, limit, _One, at_main) == model_visible(
                    model, start, end, bound, limit, at_main
                )
    newest_visible = _History([5], None)
    m[b"k999x"] = newest_visible
    m.visible_page(b"k999x", None, 99, 10, _One, 9)
    assert newest_visible.asked == 0  # answered from revs alone

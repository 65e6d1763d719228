"""SortedMap, compiled and twin: the same behaviour as a dict kept in key order."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

IMPLEMENTATIONS = ["etcdx._native._btree", "etcdx._native.btree_py"]
keys = st.binary(max_size=3)


@pytest.fixture(params=IMPLEMENTATIONS)
def sorted_map_class(request):
    return importlib.import_module(request.param).SortedMap


def model_range(model: dict, start: bytes, end: bytes | None) -> list:
    return sorted((k, v) for k, v in model.items() if k >= start and (end is None or k < end))


def test_empty_map(sorted_map_class):
    m = sorted_map_class()
    assert len(m) == 0
    assert list(m.items()) == []
    assert list(m.irange(b"", None)) == []
    assert m.get(b"x") is None
    assert b"x" not in m
    with pytest.raises(KeyError):
        m[b"x"]
    with pytest.raises(KeyError):
        del m[b"x"]
    assert m.pop(b"x", 7) == 7


def test_edge_keys_and_bounds(sorted_map_class):
    m = sorted_map_class()
    for key in (b"", b"\x00", b"\xff", b"\xff\xff", b"a", b"a\x00", b"a\xff"):
        m[key] = key
    assert [k for k, _ in m.items()] == sorted([b"", b"\x00", b"\xff", b"\xff\xff", b"a", b"a\x00", b"a\xff"])
    assert [k for k, _ in m.irange(b"a", b"a\xff")] == [b"a", b"a\x00"]
    assert list(m.irange(b"b", b"a")) == []
    assert m[b""] == b""


@pytest.mark.parametrize("order", [4, 5, 64])
def test_many_operations_match_a_dict(sorted_map_class, order):
    import random

    rng = random.Random(order)
    m, model = sorted_map_class(order), {}
    for step in range(5000):
        key = bytes(rng.randrange(256) for _ in range(rng.randint(0, 2)))
        roll = rng.random()
        if roll < 0.55:
            m[key] = model[key] = step
        elif roll < 0.9:
            assert m.pop(key, None) == model.pop(key, None)
        else:
            start, end = bytes([rng.randrange(256)]), bytes([rng.randrange(256)])
            assert list(m.irange(start, end)) == model_range(model, start, end)
        assert len(m) == len(model)
    assert list(m.items()) == sorted(model.items())
    for key in list(model):
        del m[key]
    assert len(m) == 0 and list(m.items()) == []


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_stateful_against_model(module):
    cls = importlib.import_module(module).SortedMap

    class Machine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.map = cls(4)
            self.model = {}

        @rule(key=keys, value=st.integers())
        def put(self, key, value):
            self.map[key] = value
            self.model[key] = value

        @rule(key=keys)
        def pop(self, key):
            assert self.map.pop(key, None) == self.model.pop(key, None)

        @rule(key=keys)
        def get(self, key):
            assert self.map.get(key) == self.model.get(key)
            assert (key in self.map) == (key in self.model)

        @rule(start=keys, end=st.none() | keys)
        def scan(self, start, end):
            assert list(self.map.irange(start, end)) == model_range(self.model, start, end)

        @invariant()
        def same_size(self):
            assert len(self.map) == len(self.model)

    Machine.TestCase.settings = settings(max_examples=60, stateful_step_count=120, deadline=None)
    Machine.TestCase().runTest()

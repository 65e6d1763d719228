"""The stored KeyValue's encoding, compiled and twin: the bytes protobuf (upb) gives for the same KeyValue, which
the backend stores and every reader (rangecodec, watchers, the workers' followers) copies or parses.

The compiled module is imported directly: if it was not built, its tests fail instead of skipping.
"""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given

from tests.support.pb_strategies import key_values

IMPLEMENTATIONS = ["etcdx._native._kvcodec", "etcdx._native.kvcodec_py"]
compiled, twin = (importlib.import_module(name) for name in IMPLEMENTATIONS)
each_codec = pytest.mark.parametrize("codec", [compiled, twin], ids=["compiled", "twin"])


@each_codec
@given(kv=key_values(max_key=300, max_value=400))
def test_bytes_equal_protobufs(codec, kv):
    encoded = codec.encode_key_value(kv.key, kv.create_revision, kv.mod_revision, kv.version, kv.value, kv.lease)
    assert encoded == kv.SerializeToString()


@each_codec
def test_a_field_out_of_range_is_refused(codec):
    for fields in ((1 << 63, 0, 0, 0), (0, -(1 << 63) - 1, 0, 0), (0, 0, 1 << 63, 0), (0, 0, 0, 1 << 63)):
        create, mod, version, lease = fields
        with pytest.raises(OverflowError):
            codec.encode_key_value(b"k", create, mod, version, b"v", lease)

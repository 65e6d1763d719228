"""Txn compares, evaluated as etcd 3.5 does (pure)."""

from __future__ import annotations

from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.mvccpb import kv_pb2

Compare = rpc_pb2.Compare

# The oneof field a target reads; a compare whose target_union holds another field compares against 0.
_UNION_FIELD = {
    Compare.VERSION: "version",
    Compare.CREATE: "create_revision",
    Compare.MOD: "mod_revision",
    Compare.VALUE: "value",
    Compare.LEASE: "lease",
}
_EMPTY_KV = kv_pb2.KeyValue()


def compare_kv(c: rpc_pb2.Compare, kv: kv_pb2.KeyValue) -> bool:
    field = _UNION_FIELD.get(c.target)
    if field is None:
        return _holds(c, 0)  # an unknown target compares equal, as in etcd
    if field != "value":
        return compare_number(c, getattr(kv, field))
    wanted = c.value if c.WhichOneof("target_union") == "value" else b""
    return _holds(c, (kv.value > wanted) - (kv.value < wanted))


def compare_number(c: rpc_pb2.Compare, have: int) -> bool:
    """``compare_kv`` for a VERSION, CREATE, MOD or LEASE compare, given the KeyValue's number it reads (0 for
    an absent key, as compare_range's zero KeyValue): the key index alone answers the first three, without the
    stored value."""
    field = _UNION_FIELD[c.target]
    wanted = getattr(c, field) if c.WhichOneof("target_union") == field else 0
    return _holds(c, (have > wanted) - (have < wanted))


def _holds(c: rpc_pb2.Compare, result: int) -> bool:
    """Whether the compare holds, given the sign of (what the key has - what the compare wants)."""
    if c.result == Compare.EQUAL:
        return result == 0
    if c.result == Compare.NOT_EQUAL:
        return result != 0
    if c.result == Compare.GREATER:
        return result > 0
    if c.result == Compare.LESS:
        return result < 0
    return True


def compare_range(c: rpc_pb2.Compare, kvs: list[kv_pb2.KeyValue]) -> bool:
    """Every key in the compare's range must satisfy it; with no key, VALUE fails and the others
    compare against a zero KeyValue (so create_revision == 0 tests for absence)."""
    if not kvs:
        return c.target != Compare.VALUE and compare_kv(c, _EMPTY_KV)
    return all(compare_kv(c, kv) for kv in kvs)

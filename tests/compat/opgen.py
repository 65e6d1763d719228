"""Seeded random KV operation sequences for differential testing against real etcd.

``generate(seed, base_rev)`` is deterministic: the same seed and base revision give the same ops.
Every key lives under the sequence's own prefix, so sequences run one after another on one server
pair do not see each other's keys except through deliberate "whole keyspace" reads (count only or
small limits). Revisions are chosen relative to ``base_rev`` (the store revision when the sequence
starts), covering compacted, valid and future ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from google.protobuf.message import Message

from etcdx.mvcc.keys import prefix_end
from etcdx.pb.etcdserverpb import rpc_pb2 as pb

MAX_TXN_OPS = 128


@dataclass(frozen=True)
class Op:
    method: str  # Range | Put | DeleteRange | Txn | Compact
    request: Message

    def __str__(self) -> str:
        text = str(self.request).replace("\n", " ")
        return f"{self.method}({text[:600]})"


class _Gen:
    def __init__(self, seed: int, base_rev: int) -> None:
        self.r = random.Random(seed)
        self.base = base_rev
        self.prefix = b"s%05d/" % seed
        suffixes = [b"a", b"a/1", b"a/2", b"ab", b"b", b"b\x00", b"c", b"\xfe", b"\xff", b"a\xff"]
        self.keys = [self.prefix + s for s in suffixes]
        self.values = [b"", b"v", b"w", b"x" * 5, b"\x00\xff", b"v2"]
        self.step = 0

    # -- building blocks -------------------------------------------------------------------

    def key(self) -> bytes:
        return self.r.choice(self.keys)

    def rev(self, low: int = -3) -> int:
        """A revision around this sequence's history: below base (maybe compacted) to future."""
        return max(self.base + self.r.randint(low, self.step + 3), -1)

    def key_range(self) -> tuple[bytes, bytes]:
        kind = self.r.random()
        k = self.key()
        if kind < 0.4:
            return k, b""
        if kind < 0.6:
            return k, prefix_end(k)
        if kind < 0.7:
            return k, b"\x00"
        if kind < 0.85:
            return self.prefix, prefix_end(self.prefix)
        return k, self.key()  # explicit, possibly empty or inverted

    def range_request(self, in_txn: bool = False) -> pb.RangeRequest:
        r = self.r
        key, end = self.key_range()
        req = pb.RangeRequest(key=key, range_end=end)
        if r.random() < 0.4:
            req.limit = r.randint(1, 4)
        if r.random() < 0.3:
            req.revision = self.rev()
        if r.random() < 0.35:
            req.sort_order = r.randint(0, 2)
        if r.random() < 0.35:
            req.sort_target = r.randint(0, 4)
        req.serializable = r.random() < 0.3
        req.keys_only = r.random() < 0.15
        req.count_only = r.random() < 0.1
        for field in ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"):
            if r.random() < 0.08:
                setattr(req, field, self.rev(low=0))
        if not in_txn and r.random() < 0.03:
            # The whole keyspace, kept small (count, limit)
            req.key, req.range_end = b"\x00", b"\x00"
            req.limit = r.randint(1, 3)
            req.revision = 0
        return req

    def put_request(self, in_txn: bool = False, key: bytes | None = None) -> pb.PutRequest:
        r = self.r
        req = pb.PutRequest(key=key or self.key(), value=r.choice(self.values), prev_kv=r.random() < 0.4)
        if not in_txn:  # etcd 3.5 panics on some ignore_* cases inside txns; those are not a contract
            if r.random() < 0.1:
                req.ignore_value, req.value = True, b""
            if r.random() < 0.08:
                req.ignore_lease = True
        if r.random() < 0.04:
            req.lease = r.randint(1, 1 << 40)  # no leases exist: must fail with lease not found
        return req

    def delete_request(self) -> pb.DeleteRangeRequest:
        key, end = self.key_range()
        return pb.DeleteRangeRequest(key=key, range_end=end, prev_kv=self.r.random() < 0.5)

    def compare(self) -> pb.Compare:
        r = self.r
        c = pb.Compare(key=self.key(), target=r.randint(0, 4), result=r.randint(0, 3))
        if r.random() < 0.15:
            c.range_end = r.choice([prefix_end(c.key), b"\x00"])
        target = c.target
        roll = r.random()
        if roll < 0.05:
            pass  # target_union unset: compares against zero / empty
        elif target == pb.Compare.VERSION:
            c.version = r.randint(0, 3)
        elif target == pb.Compare.CREATE:
            c.create_revision = 0 if roll < 0.4 else self.rev(low=0)
        elif target == pb.Compare.MOD:
            c.mod_revision = self.rev(low=0)
        elif target == pb.Compare.VALUE:
            c.value = r.choice(self.values)
        else:
            c.lease = 0
        return c

    def txn_request(self, depth: int = 0) -> pb.TxnRequest:
        r = self.r
        req = pb.TxnRequest(compare=[self.compare() for _ in range(r.randint(0, 3))])
        for branch in (req.success, req.failure):
            unused = list(self.keys)
            r.shuffle(unused)
            for _ in range(r.randint(0, 3)):
                kind = r.random()
                op = branch.add()
                if kind < 0.4 and unused:
                    op.request_put.CopyFrom(self.put_request(in_txn=True, key=unused.pop()))
                elif kind < 0.7:
                    op.request_range.CopyFrom(self.range_request(in_txn=True))
                elif kind < 0.85:
                    k = self.key()
                    op.request_delete_range.CopyFrom(pb.DeleteRangeRequest(key=k, prev_kv=r.random() < 0.5))
                elif depth < 2:
                    op.request_txn.CopyFrom(self.txn_request(depth + 1))
                else:
                    op.request_range.CopyFrom(self.range_request(in_txn=True))
        return req

    def invalid(self) -> Op:
        r = self.r
        choice = r.randint(0, 9)
        if choice == 0:
            return Op("Range", pb.RangeRequest(key=b""))
        if choice == 1:
            return Op("Put", pb.PutRequest(key=b"", value=b"v"))
        if choice == 2:
            return Op("DeleteRange", pb.DeleteRangeRequest(key=b""))
        if choice == 3:
            return Op("Put", pb.PutRequest(key=self.key(), value=b"v", ignore_value=True))
        if choice == 4:
            return Op("Put", pb.PutRequest(key=self.key(), lease=7, ignore_lease=True))
        if choice == 5:
            ops = [pb.RequestOp(request_range=pb.RangeRequest(key=self.key())) for _ in range(MAX_TXN_OPS + 1)]
            return Op("Txn", pb.TxnRequest(success=ops))
        if choice == 6:
            k = self.key()
            ops = [pb.RequestOp(request_put=pb.PutRequest(key=k)), pb.RequestOp(request_put=pb.PutRequest(key=k))]
            return Op("Txn", pb.TxnRequest(success=ops))
        if choice == 7:
            k = self.keys[0]
            ops = [
                pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=k, range_end=prefix_end(k))),
                pb.RequestOp(request_put=pb.PutRequest(key=self.keys[1])),
            ]
            return Op("Txn", pb.TxnRequest(failure=ops))
        if choice == 8:
            return Op("Txn", pb.TxnRequest(success=[pb.RequestOp()]))
        return Op("Txn", pb.TxnRequest(compare=[pb.Compare(key=b"", target=pb.Compare.VERSION)]))

    def op(self) -> Op:
        roll = self.r.random()
        if roll < 0.30:
            return Op("Put", self.put_request())
        if roll < 0.55:
            return Op("Range", self.range_request())
        if roll < 0.65:
            return Op("DeleteRange", self.delete_request())
        if roll < 0.86:
            return Op("Txn", self.txn_request())
        if roll < 0.89:
            return Op("Compact", pb.CompactionRequest(revision=self.rev(low=-6), physical=self.r.random() < 0.5))
        if roll < 0.895:
            return Op("Put", pb.PutRequest(key=self.key(), value=b"x" * (1_600_000 + self.r.randint(0, 1000))))
        return self.invalid()


def generate(seed: int, base_rev: int, length: int | None = None) -> list[Op]:
    gen = _Gen(seed, base_rev)
    count = length if length is not None else gen.r.randint(30, 60)
    ops = []
    for step in range(count):
        gen.step = step
        ops.append(gen.op())
    return ops

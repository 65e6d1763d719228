"""The grpc-proxy's cache of Range responses (etcd's proxy/grpcproxy/cache).

Contracts:
- Serializable Range requests are answered from the cache when it holds the same request; every Range
  response the proxy forwards is stored under its request marked serializable (a linearizable read is a
  fine serializable answer), so later serializable reads hit.
- Writes that pass through the proxy (Put, DeleteRange, Txn, Compact) invalidate what they may change: every
  entry whose key range meets the written range (a Txn: the ranges of all its ops, nested included; Compact:
  everything). Writes made by other clients of the upstream are not seen: a serializable read through the
  proxy may be stale, as it may be on any etcd member.
- Per caller: an entry answers only callers with the credentials (auth token) of the one whose read filled it,
  so a cached response never reaches a caller the upstream would refuse.
- Bounded: at most ``max_entries`` entries, least recently used first out (etcd's default is 2048). Requests
  at a fixed revision are never stored (etcd does not cache them either).
"""

from __future__ import annotations

from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Gauge

from etcdx.pb.etcdserverpb import rpc_pb2

DEFAULT_MAX_ENTRIES = 2048


def _meets(key: bytes, end: bytes, other_key: bytes, other_end: bytes) -> bool:
    """Whether [key, end) and [other_key, other_end) share a key; an empty end is the single key, b"\\0" the
    end of the key space."""

    def bounds(k: bytes, e: bytes) -> tuple[bytes, bytes | None]:
        if not e:
            return k, k + b"\0"
        return k, None if e == b"\0" else e

    a_lo, a_hi = bounds(key, end)
    b_lo, b_hi = bounds(other_key, other_end)
    return (a_hi is None or b_lo < a_hi) and (b_hi is None or a_lo < b_hi)


class RangeCache:
    def __init__(self, registry: CollectorRegistry, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max = max_entries
        # (caller, request) -> (key, range_end, reply)
        self._entries: OrderedDict[tuple, tuple[bytes, bytes, bytes]] = OrderedDict()
        # Invariant: every entry is in exactly one of these, by its range: single-key reads by key (so a Put
        # finds what it invalidates without a scan), reads of a range in the set.
        self._single: dict[bytes, set[tuple]] = {}
        self._ranged: set[tuple] = set()
        self.hits = Counter("etcd_grpc_proxy_cache_hits", "Total number of cache hits", registry=registry)
        self.misses = Counter("etcd_grpc_proxy_cache_misses", "Total number of cache misses", registry=registry)
        self.keys = Gauge("etcd_grpc_proxy_cache_keys_total", "Total number of keys/ranges cached", registry=registry)

    @staticmethod
    def _cache_key(request: rpc_pb2.RangeRequest, caller: tuple) -> tuple:
        keyed = rpc_pb2.RangeRequest()
        keyed.CopyFrom(request)
        keyed.serializable = True
        return caller, keyed.SerializeToString(deterministic=True)

    def get(self, request: rpc_pb2.RangeRequest, caller: tuple = ()) -> bytes | None:
        key = self._cache_key(request, caller)
        entry = self._entries.get(key)
        if entry is None:
            self.misses.inc()
            return None
        self._entries.move_to_end(key)
        self.hits.inc()
        return entry[2]

    def add(self, request: rpc_pb2.RangeRequest, reply: bytes, caller: tuple = ()) -> None:
        if request.revision:
            return
        key = self._cache_key(request, caller)
        self._entries[key] = (request.key, request.range_end, reply)
        self._entries.move_to_end(key)
        if request.range_end:
            self._ranged.add(key)
        else:
            self._single.setdefault(request.key, set()).add(key)
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))
        self.keys.set(len(self._entries))

    def _drop(self, cache_key: tuple) -> None:
        key, range_end, _ = self._entries.pop(cache_key)
        if range_end:
            self._ranged.discard(cache_key)
            return
        same_key = self._single[key]
        same_key.discard(cache_key)
        if not same_key:
            del self._single[key]

    def invalidate(self, key: bytes, end: bytes) -> None:
        """Drops every entry whose range meets [key, end): a single key costs the range entries and the
        entries of that key; a range costs every entry."""
        candidates = list(self._entries) if end else [*self._single.get(key, ()), *self._ranged]
        for cache_key in candidates:
            lo, hi, _ = self._entries[cache_key]
            if _meets(lo, hi, key, end):
                self._drop(cache_key)
        self.keys.set(len(self._entries))

    def invalidate_txn(self, request: rpc_pb2.TxnRequest) -> None:
        for op in (*request.success, *request.failure):
            kind = op.WhichOneof("request")
            if kind == "request_put":
                self.invalidate(op.request_put.key, b"")
            elif kind == "request_delete_range":
                self.invalidate(op.request_delete_range.key, op.request_delete_range.range_end)
            elif kind == "request_txn":
                self.invalidate_txn(op.request_txn)

    def clear(self) -> None:
        self._entries.clear()
        self._single.clear()
        self._ranged.clear()
        self.keys.set(0)

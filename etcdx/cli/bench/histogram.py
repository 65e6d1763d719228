"""A log-linear latency histogram (HdrHistogram-style buckets, ~1% precision), mergeable across
processes. Pure."""

from __future__ import annotations

import math

SUB_BUCKETS = 128  # per power of two: relative error below 1 / SUB_BUCKETS
MIN_NS = 1_000


class Histogram:
    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.sum_ns = 0
        self.min_ns = math.inf
        self.max_ns = 0

    @staticmethod
    def _bucket(ns: int) -> int:
        ns = max(ns, MIN_NS)
        exponent = ns.bit_length() - 1
        fraction = (ns - (1 << exponent)) * SUB_BUCKETS >> exponent
        return exponent * SUB_BUCKETS + fraction

    @staticmethod
    def _value(bucket: int) -> float:
        exponent, fraction = divmod(bucket, SUB_BUCKETS)
        return (1 << exponent) * (1 + (fraction + 0.5) / SUB_BUCKETS)

    def record(self, ns: int) -> None:
        bucket = self._bucket(ns)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.total += 1
        self.sum_ns += ns
        if ns < self.min_ns:
            self.min_ns = ns
        if ns > self.max_ns:
            self.max_ns = ns

    def merge(self, other: Histogram) -> None:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.total += other.total
        self.sum_ns += other.sum_ns
        self.min_ns = min(self.min_ns, other.min_ns)
        self.max_ns = max(self.max_ns, other.max_ns)

    def percentile(self, p: float) -> float:
        """Latency in seconds below which ``p`` percent of the samples fall."""
        if not self.total:
            return 0.0
        rank = max(1, math.ceil(self.total * p / 100))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(self._value(bucket), self.max_ns) / 1e9
        return self.max_ns / 1e9

    def mean(self) -> float:
        return self.sum_ns / self.total / 1e9 if self.total else 0.0

    def distribution(self, bars: int = 10) -> list[tuple[float, int]]:
        """(upper bound in seconds, count) for ``bars`` equal ranges between min and max (etcd's tool's bars)."""
        if not self.total:
            return []
        low, high = self.min_ns, self.max_ns
        width = max((high - low) / bars, 1)
        out = [0] * bars
        for bucket, count in self.counts.items():
            index = min(int((self._value(bucket) - low) / width), bars - 1)
            out[max(index, 0)] += count
        return [((low + width * (i + 1)) / 1e9, out[i]) for i in range(bars)]

    def to_dict(self) -> dict:
        return {
            "counts": self.counts,
            "total": self.total,
            "sum_ns": self.sum_ns,
            "min_ns": self.min_ns if self.total else 0,
            "max_ns": self.max_ns,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Histogram:
        h = cls()
        h.counts = {int(k): v for k, v in data["counts"].items()}
        h.total, h.sum_ns, h.max_ns = data["total"], data["sum_ns"], data["max_ns"]
        h.min_ns = data["min_ns"] if data["total"] else math.inf
        return h

"""Linearizable reads through ReadIndex (Raft thesis §6.4), batched: one ReadIndex request serves every read
that was waiting when it was issued.

A read registers a callback and is served when the callback runs: after a ReadIndex issued after the read
arrived has been answered with an index, and the applied index has reached it. So the read sees every write
committed before it began, on any member, which is what makes it linearizable.

Batching: at most one ReadIndex is in flight; reads that arrive meanwhile wait for the next one, which is
issued when the one in flight is answered (etcd's linearizableReadLoop does the same). A request that is
not answered (a lost message, a leader change) is issued again, with a fresh context, by ``retry``.

Pure: no trio, no clock. The server calls ``add``, ``issue``, ``on_read_state``, ``on_applied`` and
``retry``; callbacks run inside those calls and must not raise. Invariant: a callback runs exactly once,
either with None (serve now) or with the error that ends the read.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush

from etcdx import errors

ReadDone = Callable[[errors.EtcdError | None], None]


class ReadIndexBatches:
    def __init__(self) -> None:
        self._next: list[ReadDone] = []  # reads waiting for a ReadIndex not issued yet
        self._in_flight: tuple[bytes, list[ReadDone]] | None = None
        self._counter = 0
        # (read index, sequence, reads): answered batches waiting for the applied index to reach theirs
        self._waiting_apply: list[tuple[int, int, list[ReadDone]]] = []

    def add(self, done: ReadDone) -> bool:
        """Registers a read; True if the caller should issue a ReadIndex now (none is in flight)."""
        self._next.append(done)
        return self._in_flight is None and len(self._next) == 1

    def issue(self) -> bytes | None:
        """The context for a new ReadIndex covering every read waiting now, or None if there is none to issue
        (nothing waits, or a request is in flight already)."""
        if self._in_flight is not None or not self._next:
            return None
        ctx = self._new_context()
        self._in_flight, self._next = (ctx, self._next), []
        return ctx

    def on_read_state(self, index: int, ctx: bytes, applied: int) -> None:
        """The core answered ReadIndex ``ctx`` with ``index``: its reads are served once ``applied`` reaches it."""
        if self._in_flight is None or self._in_flight[0] != ctx:
            return  # an answer to a request retried since (its reads moved to the newer context)
        reads = self._in_flight[1]
        self._in_flight = None
        if index <= applied:
            _run(reads, None)
        else:
            heappush(self._waiting_apply, (index, self._counter, reads))

    def on_applied(self, applied: int) -> None:
        while self._waiting_apply and self._waiting_apply[0][0] <= applied:
            _run(heappop(self._waiting_apply)[2], None)

    def retry(self) -> bytes | None:
        """Re-issues the request in flight under a fresh context (its answer may never come); the context
        to send, or None if nothing is in flight. Reads that arrived since do not join it, as in etcd: they
        wait for the next request, so none is failed by the request timeout of a request issued before it
        arrived (the server times a request from its first issue)."""
        if self._in_flight is None:
            return None
        ctx = self._new_context()
        self._in_flight = (ctx, self._in_flight[1])
        return ctx

    def _new_context(self) -> bytes:
        self._counter += 1
        return self._counter.to_bytes(8, "big")

    def fail_in_flight(self, error: errors.EtcdError) -> None:
        """Ends the reads of the request in flight, if any, with ``error`` (its answer is given up on: a leader
        change, the request timeout); reads waiting for the next request stay."""
        if self._in_flight is not None:
            reads = self._in_flight[1]
            self._in_flight = None
            _run(reads, error)

    def fail_all(self, error: errors.EtcdError) -> None:
        """Ends every read with ``error`` (the member stops serving)."""
        pending = self._next + (self._in_flight[1] if self._in_flight else [])
        self._next, self._in_flight = [], None
        for _, _, reads in self._waiting_apply:
            pending.extend(reads)
        self._waiting_apply = []
        _run(pending, error)

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None

    def __len__(self) -> int:
        return (
            len(self._next)
            + (len(self._in_flight[1]) if self._in_flight else 0)
            + sum(len(reads) for _, _, reads in self._waiting_apply)
        )


def _run(reads: list[ReadDone], error: errors.EtcdError | None) -> None:
    for done in reads:
        done(error)

"""The search for a linearization: Wing & Gong's algorithm with Lowe's memoisation, as porcupine does it.

A history is linearizable when its operations can be put in one sequential order that (1) the model
accepts, each operation giving exactly the response it got, and (2) respects real time: if A returned
before B was called, A comes before B. The depth-first search extends a partial order one operation at a
time, choosing among the operations that may come next (called before every unlinearized operation's
return), and backtracks when none fits. The pair (set of linearized operations as a bitset, model state)
is memoised: reaching a pair seen before cannot succeed where it failed, so that branch is cut.

Operations with an unknown outcome (timed out, failed) return "at infinity": they may be placed anywhere
after their call, and the search succeeds once every operation with a known outcome is placed, so an
unknown operation may also never take effect. A serializable read is placed with its call at minus
infinity (it may observe a state older than operations that completed before it was called) but still
before every operation called after it returned; the caller checks its lower bound separately.

With revisions, the search also cuts a branch as soon as the state's revision has passed what some unplaced
operation reports: revisions never go down, so an operation that reported revision v (or, if it visibly
changed the store, v - 1 before it) can no longer be placed once the revision is above that. This is what
keeps histories with many unknown-outcome writes tractable: placing an unknown write too early is refuted
at once instead of after exploring every interleaving behind it.

Bounded: ``budget`` counts model steps; when it runs out the answer is UNKNOWN, never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.support.lincheck.history import (
    DeleteRangeResponse,
    ErrorResponse,
    KeyValue,
    Operation,
    Put,
    PutResponse,
    RangeResponse,
    Request,
    Response,
    Txn,
    TxnResponse,
    is_serializable_read,
)
from tests.support.lincheck.model import INITIAL, INITIAL_WITHOUT_REVISIONS, State, apply, without_revisions

LINEARIZABLE = "linearizable"
VIOLATION = "violation"
UNKNOWN = "unknown"


@dataclass
class SearchResult:
    """``linearization``: the whole order (LINEARIZABLE) or the longest partial order found (otherwise),
    each operation with the state after it. ``blocked``: after that partial order, every operation that
    could have come next, with the responses the model would give it there (when one of them is the
    response it got, it fits there but every continuation failed). ``owed``: the unplaced operation that
    reported the lowest revision, which the store may not pass."""

    verdict: str
    steps: int
    linearization: list[tuple[Operation, State]] = field(default_factory=list)
    blocked: list[tuple[Operation, list[Response]]] = field(default_factory=list)
    initial: State = INITIAL
    owed: Operation | None = None


def search(ops: list[Operation], track_revisions: bool = True, budget: int = 2_000_000) -> SearchResult:
    initial = INITIAL if track_revisions else INITIAL_WITHOUT_REVISIONS

    def call_of(op: Operation) -> float:
        return -math.inf if is_serializable_read(op.request) else op.call

    known = sorted((op for op in ops if op.known), key=lambda op: (call_of(op), op.ret))
    unknown = sorted((op for op in ops if not op.known), key=call_of)
    order = known + unknown
    n_known, n = len(known), len(order)
    calls = [call_of(op) for op in order]
    rets = [op.ret if op.known else math.inf for op in order]
    wanted = [
        (op.response if track_revisions else without_revisions(op.response)) if op.known else None for op in order
    ]
    known_mask = (1 << n_known) - 1
    floors = [_floor(op) for op in known] if track_revisions else [math.inf] * n_known
    by_floor = sorted(range(n_known), key=floors.__getitem__)
    floor_rank = [0] * n_known
    for rank, j in enumerate(by_floor):
        floor_rank[j] = rank

    # An unknown write whose (key, value) some response shows with mod revision m is tried first where it
    # would make revision m: a search order only (values need not be unique), which finds witnesses sooner.
    observed: dict[tuple[bytes, bytes], set[int]] = {}
    for op in known:
        for kv in _kvs_in(op.response):
            observed.setdefault((kv.key, kv.value), set()).add(kv.mod_revision)
    sightings = [set() for _ in range(n_known)] + [
        set().union(*(observed.get((p.key, p.value), set()) for p in _puts_in(op.request))) for op in unknown
    ]

    def lowest_floor(fbits: int) -> float:
        """The lowest floor among unplaced known operations (``fbits``: placed ones, in floor order)."""
        rank = ((fbits + 1) & ~fbits).bit_length() - 1
        return floors[by_floor[rank]] if rank < n_known else math.inf

    def step(state: State, j: int) -> list[State]:
        outcomes = apply(state, order[j].request, track_revisions)
        if j < n_known:
            return [s for s, response in outcomes if response == wanted[j]]
        # placing an unknown operation that changes nothing is never needed: leaving it out keeps it available
        return [s for s in dict.fromkeys(s for s, _ in outcomes) if s != state]

    def window(bits: int) -> Iterator[int]:
        """The operations that may come next: called before the earliest return of any unplaced one."""
        earliest_return = math.inf
        i = ((bits + 1) & ~bits).bit_length() - 1  # first unplaced operation
        while i < n_known:
            if not (bits >> i) & 1:
                if calls[i] >= earliest_return:
                    break
                yield i
                earliest_return = min(earliest_return, rets[i])
            i += 1
        for u in range(n_known, n):
            if not (bits >> u) & 1 and calls[u] < earliest_return:
                yield u

    def children(bits: int, state: State) -> Iterator[tuple[int, State]]:
        """The next moves. A known operation that fits and leaves the state as it is (a read, a delete of
        nothing, a txn that only ranges) is the only move: any linearization from here can place it first,
        since it may come next in real time and changes nothing the others see."""
        moves, seen_later = [], []
        for j in window(bits):
            for s in step(state, j):
                if j < n_known and s == state:
                    yield j, s
                    return
                (seen_later if j >= n_known and s.revision in sightings[j] else moves).append((j, s))
        yield from seen_later
        yield from moves

    if n_known == 0:
        return SearchResult(LINEARIZABLE, 0, [], [], initial)
    steps = 0
    seen = {(0, initial)}
    stack: list[tuple[int, int, State, Iterator[tuple[int, State]]]] = [(0, 0, initial, children(0, initial))]
    path: list[tuple[int, State]] = []
    best: list[tuple[int, State]] = []
    best_bits = 0
    while stack:
        bits, fbits, state, kids = stack[-1]
        for j, nxt in kids:
            steps += 1
            if steps > budget:
                return _result(UNKNOWN, steps, order, best, best_bits, initial, track_revisions, window)
            nbits = bits | (1 << j)
            nfbits = fbits | (1 << floor_rank[j]) if j < n_known else fbits
            if nxt.revision > lowest_floor(nfbits) or (nbits, nxt) in seen:
                continue
            seen.add((nbits, nxt))
            path.append((j, nxt))
            if nbits & known_mask == known_mask:
                return _result(LINEARIZABLE, steps, order, path, nbits, initial, track_revisions, window)
            if len(path) > len(best):
                best, best_bits = list(path), nbits
            stack.append((nbits, nfbits, nxt, children(nbits, nxt)))
            break
        else:
            stack.pop()
            if path:
                path.pop()
    return _result(VIOLATION, steps, order, best, best_bits, initial, track_revisions, window)


def _floor(op: Operation) -> float:
    """The highest store revision at which ``op`` can still be placed (infinite if its response tells none)."""
    response = op.response
    if isinstance(response, ErrorResponse):
        return math.inf
    changed = (
        isinstance(response, PutResponse)
        or (isinstance(response, DeleteRangeResponse) and response.deleted > 0)
        or (isinstance(response, TxnResponse) and any(_changed(r) for r in response.responses))
    )
    return response.revision - 1 if changed else response.revision


def _kvs_in(response: Response) -> Iterator[KeyValue]:
    if isinstance(response, RangeResponse):
        yield from response.kvs
    elif isinstance(response, PutResponse) and response.prev_kv is not None:
        yield response.prev_kv
    elif isinstance(response, DeleteRangeResponse):
        yield from response.prev_kvs
    elif isinstance(response, TxnResponse):
        for inner in response.responses:
            yield from _kvs_in(inner)


def _puts_in(request: Request) -> Iterator[Put]:
    if isinstance(request, Put):
        yield request
    elif isinstance(request, Txn):
        for sub in request.success + request.failure:
            yield from _puts_in(sub)


def _changed(response: Response) -> bool:
    return isinstance(response, PutResponse) or (isinstance(response, DeleteRangeResponse) and response.deleted > 0)


def _result(verdict, steps, order, path, bits, initial, track_revisions, window) -> SearchResult:
    linearization = [(order[j], s) for j, s in path]
    blocked = []
    owed = None
    if verdict != LINEARIZABLE:
        unplaced = [op for j, op in enumerate(order) if op.known and not (bits >> j) & 1]
        floors = [
            (_floor(op), op.response.revision if _floor(op) < math.inf else 0, i) for i, op in enumerate(unplaced)
        ]
        if track_revisions and floors and min(floors)[0] < math.inf:
            owed = unplaced[min(floors)[2]]
        state = path[-1][1] if path else initial
        for j in window(bits):
            op = order[j]
            if op.known:
                blocked.append((op, [r for _, r in apply(state, op.request, track_revisions)]))
    return SearchResult(verdict, steps, linearization, blocked, initial, owed)

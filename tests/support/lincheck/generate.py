"""Random histories built around a real linearization, and the same histories with one planted fault.

``plan`` draws requests and gives each one a linearization point; each client is sequential, and its
operation's interval [call, return] is drawn around the point (so many clients overlap). ``execute`` runs
the plan through the sequential model in point order and records what each client was told, giving a
history that is linearizable by construction (the points are a witness). Options: timed-out operations
(outcome unknown; a timed-out write is applied at its point or never), serializable reads (which return
the state at any revision between what their client had seen and the current one: stale but allowed).

Planted faults, each chosen so that any correct checker must reject the result (the conditions are in
``plant``): a stale linearizable read (it shows the state before a write that completed before it was
called), a lost acknowledged write, a write applied twice, a write response whose revision is off by one.
The last three need histories without timed-out operations and without lease revokes, whose effect on
the revision a response does not show.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from tests.support.lincheck.history import (
    Compare,
    DeleteRange,
    ErrorResponse,
    LeaseGrant,
    LeaseRevoke,
    Operation,
    Put,
    PutResponse,
    Range,
    Request,
    Txn,
    is_serializable_read,
)
from tests.support.lincheck.model import INITIAL, State, apply, read

FAULTS = ("stale-read", "lost-write", "duplicated-write", "revision-off-by-one")


@dataclass(frozen=True)
class Planned:
    client: int
    call: int
    point: int
    ret: int | None  # None: timed out
    request: Request
    applied: bool  # False only for a timed-out write that never took effect


def plan(
    rng: random.Random,
    n_ops: int,
    n_clients: int,
    n_keys: int = 4,
    timeout_rate: float = 0.0,
    serializable_rate: float = 0.1,
    leases: bool = True,
    spread: int = 30,
) -> list[Planned]:
    """``n_ops`` requests in linearization-point order, their intervals overlapping across clients."""
    keys = [f"k{i}".encode() for i in range(n_keys)]
    busy_until = [0] * n_clients
    point = 0
    granted: list[int] = []
    out = []
    for i in range(n_ops):
        point += rng.randint(1, 4)
        free = [c for c in range(n_clients) if busy_until[c] < point - 1]
        if not free:
            point = min(busy_until) + 2
            free = [c for c in range(n_clients) if busy_until[c] < point - 1]
        client = rng.choice(free)
        call = rng.randint(max(busy_until[client] + 1, point - spread), point - 1)
        request = _request(rng, i, keys, granted, serializable_rate, leases)
        timed_out = rng.random() < timeout_rate
        applied = not timed_out or rng.random() < 0.5
        ret = None if timed_out else point + rng.randint(1, spread)
        busy_until[client] = point + 2 * spread if timed_out else ret
        out.append(Planned(client, call, point, ret, request, applied))
    return out


def _request(rng, i, keys, granted, serializable_rate, leases) -> Request:
    key = rng.choice(keys)
    roll = rng.random()
    if roll < 0.30:
        lease = rng.choice(granted) if leases and granted and rng.random() < 0.3 else 0
        return Put(key, f"v{i}".encode(), lease=lease, prev_kv=rng.random() < 0.5)
    if roll < 0.55:
        if rng.random() < 0.2:
            return Range(key, b"\0", serializable=rng.random() < serializable_rate)
        return Range(key, serializable=rng.random() < serializable_rate)
    if roll < 0.63:
        return DeleteRange(key, b"\0" if rng.random() < 0.1 else b"", prev_kv=rng.random() < 0.5)
    if roll < 0.85 or not leases:
        target = rng.choice(["value", "version", "create", "mod"])
        operand = f"v{rng.randint(max(0, i - 20), i)}".encode() if target == "value" else rng.randint(0, 6)
        compare = Compare(key, target, rng.choice(["=", "!=", ">", "<"]), operand)
        other = rng.choice(keys)
        success = (Put(key, f"v{i}".encode(), prev_kv=True), Range(other))
        failure = (Range(key),) if rng.random() < 0.7 else (DeleteRange(other),)
        return Txn((compare,), success, failure)
    if roll < 0.93 or not granted:
        granted.append(100 + i)
        return LeaseGrant(100 + i)
    return LeaseRevoke(rng.choice(granted))


@dataclass
class Executed:
    history: list[Operation]  # in linearization-point order, one per planned request
    before: list[State]  # the model state just before each planned request's point


def execute(rng: random.Random, planned: list[Planned], lost: int | None = None, duplicated: int | None = None):
    """Run the plan in point order; ``lost``: that request is answered but its effect dropped;
    ``duplicated``: that request's effect is applied twice (answered from the first time)."""
    state = INITIAL
    by_revision = {INITIAL.revision: INITIAL}
    seen = {}
    history, before = [], []
    for i, p in enumerate(planned):
        before.append(state)
        after, response = apply(state, p.request)[0]
        if p.request.__class__ is Range and p.request.serializable:
            low = min(seen.get(p.client, 1), state.revision)  # a planted fault may have told it more
            response = read(by_revision[rng.randint(low, state.revision)], p.request)
        if p.applied and i != lost:
            state = after
            by_revision[state.revision] = state
            if i == duplicated:
                state = apply(state, p.request)[0][0]
                by_revision[state.revision] = state
        if p.ret is None:
            history.append(Operation(p.client, p.call, None, p.request, None))
        else:
            history.append(Operation(p.client, p.call, p.ret, p.request, response))
            if not isinstance(response, ErrorResponse):
                seen[p.client] = max(seen.get(p.client, 1), response.revision)
    return Executed(history, before)


def _plain_put_ok(op: Operation) -> bool:
    return isinstance(op.request, Put) and op.request.lease == 0 and isinstance(op.response, PutResponse)


def plant(rng: random.Random, planned: list[Planned], fault: str) -> list[Operation] | None:
    """The history of ``planned`` with ``fault`` planted where a checker must see it; None if nowhere fits."""
    clean = execute(random.Random(rng.random()), planned)
    ops = clean.history
    writes = [i for i, op in enumerate(ops) if _plain_put_ok(op)]
    if fault == "stale-read":
        pairs = [
            (r, w)
            for r, op in enumerate(ops)
            if op.known and isinstance(op.request, Range) and not op.request.serializable
            for w in writes
            if ops[w].ret < op.call
        ]
        if not pairs:
            return None
        r, w = rng.choice(pairs)
        stale = read(clean.before[w], ops[r].request)
        return ops[:r] + [replace(ops[r], response=stale)] + ops[r + 1 :]
    if fault == "revision-off-by-one":
        if not writes:
            return None
        w = rng.choice(writes)
        response = ops[w].response
        changed = replace(response, revision=response.revision + rng.choice([-1, 1]))
        return ops[:w] + [replace(ops[w], response=changed)] + ops[w + 1 :]
    seed = rng.random()
    for w in rng.sample(writes, len(writes)):
        if fault == "lost-write":
            faulty = execute(random.Random(seed), planned, lost=w).history
            revision = faulty[w].response.revision
            later_put = any(_plain_put_ok(op) for op in faulty[w + 1 :])
            read_behind = any(
                op.known and op.call > faulty[w].ret and _revision(op) is not None and _revision(op) < revision
                for op in faulty
            )
            if later_put or read_behind:
                return faulty
        elif fault == "duplicated-write":
            faulty = execute(random.Random(seed), planned, duplicated=w).history
            if any(op.known and _revision(op) is not None for op in faulty[w + 1 :]):
                return faulty
        else:
            raise ValueError(f"unknown fault {fault!r}")
    return None


def _revision(op: Operation) -> int | None:
    """The revision ``op`` reports as current; None for errors and serializable reads (they may lag)."""
    if isinstance(op.response, ErrorResponse) or is_serializable_read(op.request):
        return None
    return op.response.revision


def history(seed: int, n_ops: int, n_clients: int, fault: str | None = None, **options) -> list[Operation] | None:
    """A linearizable history (``fault`` None) or one with ``fault`` planted (None if it cannot be)."""
    rng = random.Random(seed)
    planned = plan(rng, n_ops, n_clients, **options)
    if fault is None:
        return execute(rng, planned).history
    return plant(rng, planned, fault)

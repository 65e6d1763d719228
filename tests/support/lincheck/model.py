"""A sequential model of etcd's KV store and leases, with revisions exactly as etcd counts them.

State: the store's revision (1 when empty, as etcd starts), every live key with its value, create and mod
revisions, version and lease, and the set of live lease ids. Rules (etcd's MVCC semantics):

- every request that changes a key bumps the revision by exactly one, whatever the number of keys it
  changes: a Put always; a DeleteRange or a LeaseRevoke only when it deleted at least one key; a Txn when
  its chosen branch changed at least one key (all its writes share that one new revision);
- a response's header revision is the store's revision after the request (unchanged for reads);
- a Put creates a key with version 1 and create_revision = mod_revision = the new revision, and on an
  existing key keeps create_revision and bumps version; a Put without a lease detaches the key;
- a Put on a lease that does not exist is the error ``etcdserver: requested lease not found`` and changes
  nothing (inside a Txn it fails the whole Txn);
- a Txn compares single keys: on a missing key, a value compare is false and version/create/mod/lease
  compare as 0; ranges inside a Txn see the Txn's own earlier writes;
- LeaseGrant takes the client-chosen id (``etcdserver: lease already exists`` if live) and does not bump
  the revision; LeaseRevoke deletes the lease's keys.

What the model does not contain: lease expiry (a lease lives until revoked), compaction, limits, sort
orders other than by key, count-only and keys-only ranges, auth, and watches.

``track_revisions=False`` gives the weaker model used when the history is partitioned by key: revisions
are not kept (always 0 in states and responses), and a compare on create/mod revision may go either way.
"""

from __future__ import annotations

from typing import NamedTuple

from tests.support.lincheck.history import (
    Compare,
    DeleteRange,
    DeleteRangeResponse,
    ErrorResponse,
    KeyValue,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseRevoke,
    LeaseRevokeResponse,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Request,
    Response,
    Txn,
    TxnResponse,
)

LEASE_NOT_FOUND = "etcdserver: requested lease not found"
LEASE_EXISTS = "etcdserver: lease already exists"


class State(NamedTuple):
    """Immutable and hashable, so that (linearized set, state) pairs can be memoised."""

    revision: int
    kvs: tuple[KeyValue, ...]  # sorted by key
    leases: frozenset[int]


INITIAL = State(1, (), frozenset())
INITIAL_WITHOUT_REVISIONS = State(0, (), frozenset())


class _LeaseNotFound(Exception):
    pass


def in_range(key: bytes, start: bytes, end: bytes) -> bool:
    if end == b"":
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


def read(state: State, request: Range) -> RangeResponse:
    """The answer a Range gets from ``state`` (used for linearizable and serializable reads alike)."""
    kvs = tuple(kv for kv in state.kvs if in_range(kv.key, request.key, request.range_end))
    return RangeResponse(state.revision, kvs)


def _freeze(revision: int, kvs: dict[bytes, KeyValue], leases: set[int] | frozenset[int]) -> State:
    return State(revision, tuple(kvs[k] for k in sorted(kvs)), frozenset(leases))


def _put(kvs: dict[bytes, KeyValue], leases: frozenset[int], req: Put, revision: int) -> KeyValue | None:
    if req.lease and req.lease not in leases:
        raise _LeaseNotFound
    prev = kvs.get(req.key)
    if prev is None:
        kvs[req.key] = KeyValue(req.key, req.value, revision, revision, 1, req.lease)
    else:
        kvs[req.key] = KeyValue(req.key, req.value, prev.create_revision, revision, prev.version + 1, req.lease)
    return prev


def _delete(kvs: dict[bytes, KeyValue], req: DeleteRange) -> tuple[KeyValue, ...]:
    gone = tuple(kvs[k] for k in sorted(kvs) if in_range(k, req.key, req.range_end))
    for kv in gone:
        del kvs[kv.key]
    return gone


def _compare(kvs: dict[bytes, KeyValue], c: Compare) -> bool:
    kv = kvs.get(c.key)
    if kv is None and c.target == "value":
        return False
    actual = {
        "value": kv.value if kv else b"",
        "version": kv.version if kv else 0,
        "create": kv.create_revision if kv else 0,
        "mod": kv.mod_revision if kv else 0,
        "lease": kv.lease if kv else 0,
    }[c.target]
    if c.op == "=":
        return actual == c.operand
    if c.op == "!=":
        return actual != c.operand
    if c.op == ">":
        return actual > c.operand
    if c.op == "<":
        return actual < c.operand
    raise ValueError(f"unknown compare op {c.op!r}")


def _txn_outcomes(state: State, req: Txn, track_revisions: bool) -> list[bool]:
    """Which branches the compares allow: one, or both when a revision compare cannot be evaluated."""
    kvs = {kv.key: kv for kv in state.kvs}
    if not track_revisions and any(c.target in ("create", "mod") for c in req.compares):
        decided = [c for c in req.compares if c.target not in ("create", "mod")]
        return [False] if not all(_compare(kvs, c) for c in decided) else [True, False]
    return [all(_compare(kvs, c) for c in req.compares)]


def _txn(state: State, req: Txn, succeeded: bool, track_revisions: bool) -> tuple[State, Response]:
    kvs = {kv.key: kv for kv in state.kvs}
    new_revision = state.revision + 1 if track_revisions else 0
    changed = False
    results: list[tuple[str, object]] = []
    try:
        for op in req.success if succeeded else req.failure:
            if isinstance(op, Put):
                prev = _put(kvs, state.leases, op, new_revision)
                results.append(("put", prev if op.prev_kv else None))
                changed = True
            elif isinstance(op, DeleteRange):
                gone = _delete(kvs, op)
                changed = changed or bool(gone)
                results.append(("delete", (len(gone), gone if op.prev_kv else ())))
            else:
                view = _freeze(0, kvs, state.leases)
                results.append(("range", read(view, op).kvs))
    except _LeaseNotFound:
        return state, ErrorResponse(LEASE_NOT_FOUND)
    revision = (new_revision if changed else state.revision) if track_revisions else 0
    responses = []
    for kind, data in results:
        if kind == "put":
            responses.append(PutResponse(revision, data))
        elif kind == "delete":
            responses.append(DeleteRangeResponse(revision, data[0], data[1]))
        else:
            responses.append(RangeResponse(revision, data))
    new_state = _freeze(revision, kvs, state.leases) if changed else state
    return new_state, TxnResponse(revision, succeeded, tuple(responses))


def apply(state: State, request: Request, track_revisions: bool = True) -> list[tuple[State, Response]]:
    """Every (next state, response) the request can produce from ``state``: one, except for a Txn whose
    revision compares are not evaluated (``track_revisions=False``), which may give two."""
    bump = 1 if track_revisions else 0
    if isinstance(request, Range):
        return [(state, read(state, request))]
    if isinstance(request, Put):
        kvs = {kv.key: kv for kv in state.kvs}
        revision = state.revision + bump
        try:
            prev = _put(kvs, state.leases, request, revision)
        except _LeaseNotFound:
            return [(state, ErrorResponse(LEASE_NOT_FOUND))]
        return [(_freeze(revision, kvs, state.leases), PutResponse(revision, prev if request.prev_kv else None))]
    if isinstance(request, DeleteRange):
        kvs = {kv.key: kv for kv in state.kvs}
        gone = _delete(kvs, request)
        if not gone:
            return [(state, DeleteRangeResponse(state.revision, 0, ()))]
        revision = state.revision + bump
        prev_kvs = gone if request.prev_kv else ()
        return [(_freeze(revision, kvs, state.leases), DeleteRangeResponse(revision, len(gone), prev_kvs))]
    if isinstance(request, Txn):
        return [_txn(state, request, ok, track_revisions) for ok in _txn_outcomes(state, request, track_revisions)]
    if isinstance(request, LeaseGrant):
        if request.id in state.leases:
            return [(state, ErrorResponse(LEASE_EXISTS))]
        return [(state._replace(leases=state.leases | {request.id}), LeaseGrantResponse(state.revision, request.id))]
    if isinstance(request, LeaseRevoke):
        if request.id not in state.leases:
            return [(state, ErrorResponse(LEASE_NOT_FOUND))]
        kvs = {kv.key: kv for kv in state.kvs if kv.lease != request.id}
        revision = state.revision + bump if len(kvs) != len(state.kvs) else state.revision
        return [(_freeze(revision, kvs, state.leases - {request.id}), LeaseRevokeResponse(revision))]
    raise TypeError(f"not a request: {request!r}")


def without_revisions(response: Response) -> Response:
    """``response`` as the revision-less model gives it: header, create and mod revisions set to 0."""

    def kv0(kv: KeyValue | None) -> KeyValue | None:
        return None if kv is None else kv._replace(create_revision=0, mod_revision=0)

    if isinstance(response, PutResponse):
        return PutResponse(0, kv0(response.prev_kv))
    if isinstance(response, DeleteRangeResponse):
        return DeleteRangeResponse(0, response.deleted, tuple(kv0(kv) for kv in response.prev_kvs))
    if isinstance(response, RangeResponse):
        return RangeResponse(0, tuple(kv0(kv) for kv in response.kvs))
    if isinstance(response, TxnResponse):
        return TxnResponse(0, response.succeeded, tuple(without_revisions(r) for r in response.responses))
    if isinstance(response, LeaseGrantResponse):
        return LeaseGrantResponse(0, response.id)
    if isinstance(response, LeaseRevokeResponse):
        return LeaseRevokeResponse(0)
    return response

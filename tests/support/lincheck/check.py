"""Judge a whole client history: linearizable, a violation (with a readable report), or unknown.

What is checked, in order:

1. Operations with an unknown outcome: a read tells nothing and is dropped; a write is possibly applied
   (anywhere after its call, or never).
2. Serializable reads, by a rule weaker than linearizability that we state as: a serializable Range must
   return exactly the store's state at the revision it reports, where that revision is (a) at least the
   highest revision its own client had been told before it called in the same session (no going back for a
   client while it stays with one member; a member it fails over to may have applied less, in etcd as here:
   a serializable read is answered from the member's own applied state), and
   (b) reached by the one linearization of all the other operations no later than any operation invoked
   after the read returned (no reading the future). It may be older than writes other clients completed
   before it was called (it may be stale). (a) is checked up front, (b) inside the search.
3. Everything else, linearizability of the whole history against the model with revisions (header
   revisions, create/mod revisions, versions, values, leases). Keys are not independent once revisions
   are checked (every write bumps the one global revision), so this search runs over the whole history.
4. If that search runs out of its step budget, and every operation touches exactly one key (no multi-key
   ranges or deletes, no multi-key txns, no leases), the history is split by key and each key is checked
   against the model WITHOUT revisions (P-compositionality holds for independent keys). The verdict then
   says so: ``linearizable-per-key-without-revisions`` is not a pass of the full check, and serializable
   reads are not checked in that mode. A violation found per key is a violation of the full check too.

What the checker cannot see: anything no client observed (a lost write that no later read or revision
reveals is, correctly, linearizable), lease expiry, watches, and compaction. A violation report gives the
smallest failing prefix of the history (cut at a return time; operations still running at the cut count
as outcome unknown) and, for it, the longest partial linearization found and the operations that could
not come next, with what the model would have answered them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.support.lincheck import describe
from tests.support.lincheck.history import (
    DeleteRange,
    ErrorResponse,
    Operation,
    Put,
    Range,
    Response,
    Txn,
    is_read_only,
    is_serializable_read,
)
from tests.support.lincheck.model import State, without_revisions
from tests.support.lincheck.search import LINEARIZABLE, UNKNOWN, VIOLATION, SearchResult, search

PER_KEY = "linearizable-per-key-without-revisions"


@dataclass
class CheckResult:
    """``ok`` is True only for the full check (whole history, with revisions) passing."""

    verdict: str
    scope: str
    steps: int
    report: str
    dropped_unknown_reads: int = 0
    linearization: list[tuple[Operation, State]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict == LINEARIZABLE

    def __str__(self) -> str:
        return self.report


def revision_of(response: Response | None) -> int | None:
    if response is None or isinstance(response, ErrorResponse):
        return None
    return response.revision


def check(
    history: list[Operation], budget: int = 2_000_000, per_key_fallback: bool = True, per_key_budget: int | None = None
) -> CheckResult:
    """Judge ``history``. ``budget`` bounds the model steps of the whole-history search (and of each prefix
    search of a violation report), ``per_key_budget`` (default: ``budget``) those of each per-key search;
    an exhausted budget gives UNKNOWN."""
    ops = [op for op in history if op.known or not is_read_only(op.request)]
    dropped = len(history) - len(ops)
    stale = _serializable_lower_bound_violations(ops)
    if stale:
        lines = ["NOT LINEARIZABLE: serializable reads went back below what their client had already seen:"]
        lines += [f"  {describe.operation(op)}  (client had seen rev {seen})" for op, seen in stale]
        return CheckResult(VIOLATION, "serializable reads, per client", 0, "\n".join(lines), dropped)

    whole = search(ops, True, budget)
    scope = f"whole history with revisions, {len(ops)} operations ({dropped} unknown reads dropped)"
    if whole.verdict == LINEARIZABLE:
        report = f"linearizable ({scope}; {whole.steps} steps)"
        return CheckResult(LINEARIZABLE, scope, whole.steps, report, dropped, whole.linearization)
    if whole.verdict == VIOLATION:
        cut, smallest = _smallest_failing_prefix(ops, budget, whole)
        report = _violation_report(f"NOT LINEARIZABLE ({scope}; {whole.steps} steps)", cut, smallest)
        return CheckResult(VIOLATION, scope, whole.steps, report, dropped, smallest.linearization)

    unknown_report = f"UNKNOWN: the search ran out of its budget of {budget} steps ({scope})"
    partitions = _partition_by_key(ops) if per_key_fallback else None
    if partitions is None:
        reason = "" if not per_key_fallback else "; no per-key fallback: some operation touches several keys or a lease"
        return CheckResult(UNKNOWN, scope, whole.steps, unknown_report + reason, dropped)
    steps = whole.steps
    verdicts = []
    for key, key_ops in sorted(partitions.items()):
        part = search(key_ops, False, budget if per_key_budget is None else per_key_budget)
        steps += part.steps
        if part.verdict == VIOLATION:
            per_scope = f"key {describe.key(key)} alone, without revisions, {len(key_ops)} operations"
            report = _violation_report(f"NOT LINEARIZABLE ({per_scope})", None, part)
            return CheckResult(VIOLATION, per_scope, steps, unknown_report + "\n" + report, dropped)
        verdicts.append(part.verdict)
    n_serializable = sum(1 for op in ops if is_serializable_read(op.request))
    if all(v == LINEARIZABLE for v in verdicts):
        per_scope = (
            f"each of {len(partitions)} keys alone, revisions NOT checked, "
            f"{n_serializable} serializable reads NOT checked"
        )
        report = unknown_report + f"\nfallback: linearizable per key ({per_scope})"
        return CheckResult(PER_KEY, per_scope, steps, report, dropped)
    return CheckResult(UNKNOWN, scope, steps, unknown_report + "\nfallback per key: also out of budget", dropped)


def _serializable_lower_bound_violations(ops: list[Operation]) -> list[tuple[Operation, int]]:
    by_client: dict[tuple[int, int], list[Operation]] = {}
    for op in ops:
        if op.known:
            by_client.setdefault((op.client, op.session), []).append(op)
    found = []
    for client_ops in by_client.values():
        for op in client_ops:
            if not is_serializable_read(op.request):
                continue
            earlier = [revision_of(o.response) for o in client_ops if o.ret < op.call]
            seen = max((r for r in earlier if r is not None), default=0)
            if op.response.revision < seen:
                found.append((op, seen))
    return found


def _prefix(ops: list[Operation], cut: float) -> list[Operation]:
    """The history as it stood at time ``cut``: operations still running then have an unknown outcome."""
    out = []
    for op in ops:
        if op.call > cut:
            continue
        if op.known and op.ret > cut:
            if is_read_only(op.request):
                continue
            op = Operation(op.client, op.call, None, op.request, None, op.session)
        out.append(op)
    return out


def _smallest_failing_prefix(
    ops: list[Operation], budget: int, whole: SearchResult
) -> tuple[float | None, SearchResult]:
    """Binary search over return times for the earliest cut whose prefix is already not linearizable."""
    cuts = sorted({op.ret for op in ops if op.known})
    lo, hi = 0, len(cuts) - 1
    found: tuple[float | None, SearchResult] = (None, whole)
    while lo <= hi:
        mid = (lo + hi) // 2
        result = search(_prefix(ops, cuts[mid]), True, budget)
        if result.verdict == VIOLATION:
            found = (cuts[mid], result)
            hi = mid - 1
        else:
            lo = mid + 1
    return found


def _violation_report(title: str, cut: float | None, result: SearchResult, shown: int = 12) -> str:
    lines = [title]
    if cut is not None:
        lines.append(f"smallest failing prefix: the history up to t={cut:g} (operations running then: outcome unknown)")
    lin = result.linearization
    lines.append(f"longest linearization found: {len(lin)} operations" + (f", the last {shown}:" if lin else ""))
    for op, _after in lin[-shown:]:
        lines.append(f"  {describe.operation(op)}")
    end = lin[-1][1] if lin else result.initial
    lines.append(f"state after it: {describe.state(end)}")
    lines.append("none of these can come next:")
    for op, would in result.blocked:
        if op.response in would or (result.initial.revision == 0 and without_revisions(op.response) in would):
            lines.append(f"  {describe.operation(op)}\n      fits here, but every order that continues from it fails")
        else:
            alternatives = " or ".join(describe.response(r) for r in would)
            lines.append(f"  {describe.operation(op)}\n      the model would answer: {alternatives}")
    if result.owed is not None:
        lines.append(f"lowest revision still owed to: {describe.operation(result.owed)}")
    return "\n".join(lines)


def _partition_by_key(ops: list[Operation]) -> dict[bytes, list[Operation]] | None:
    """Operations grouped by the one key each touches; None if any touches several keys or a lease."""
    parts: dict[bytes, list[Operation]] = {}
    for op in ops:
        if is_serializable_read(op.request):
            continue
        key = _single_key(op.request)
        if key is None:
            return None
        parts.setdefault(key, []).append(op)
    return parts


def _single_key(req) -> bytes | None:
    if isinstance(req, Put):
        return None if req.lease else req.key
    if isinstance(req, DeleteRange | Range):
        return req.key if req.range_end == b"" else None
    if isinstance(req, Txn):
        keys = {c.key for c in req.compares}
        for sub in req.success + req.failure:
            key = _single_key(sub)
            if key is None:
                return None
            keys.add(key)
        return keys.pop() if len(keys) == 1 else None
    return None

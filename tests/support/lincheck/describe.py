"""Short, readable text for operations, responses and states, for failure reports."""

from __future__ import annotations

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
    Operation,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Txn,
    TxnResponse,
)
from tests.support.lincheck.model import State


def _b(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def key(data: bytes) -> str:
    return _b(data)


def _keys(key: bytes, end: bytes) -> str:
    if end == b"":
        return _b(key)
    return f"[{_b(key)}, +inf)" if end == b"\0" else f"[{_b(key)}, {_b(end)})"


def kv(item: KeyValue | None) -> str:
    if item is None:
        return "none"
    lease = f" lease={item.lease}" if item.lease else ""
    return f"{_b(item.key)}={_b(item.value)}(c{item.create_revision} m{item.mod_revision} v{item.version}{lease})"


def request(req) -> str:
    if isinstance(req, Put):
        return f"put {_b(req.key)}={_b(req.value)}" + (f" lease={req.lease}" if req.lease else "")
    if isinstance(req, DeleteRange):
        return f"delete {_keys(req.key, req.range_end)}"
    if isinstance(req, Range):
        return ("serializable " if req.serializable else "") + f"range {_keys(req.key, req.range_end)}"
    if isinstance(req, Txn):
        cmp = ", ".join(_compare(c) for c in req.compares)
        then = "; ".join(request(r) for r in req.success)
        other = "; ".join(request(r) for r in req.failure)
        return f"txn if({cmp}) then({then}) else({other})"
    if isinstance(req, LeaseGrant):
        return f"lease grant {req.id}"
    if isinstance(req, LeaseRevoke):
        return f"lease revoke {req.id}"
    return repr(req)


def _compare(c: Compare) -> str:
    operand = _b(c.operand) if isinstance(c.operand, bytes) else str(c.operand)
    return f"{_b(c.key)}.{c.target} {c.op} {operand}"


def response(resp) -> str:
    if resp is None:
        return "? (outcome unknown)"
    if isinstance(resp, PutResponse):
        return f"rev {resp.revision}" + (f" prev {kv(resp.prev_kv)}" if resp.prev_kv else "")
    if isinstance(resp, DeleteRangeResponse):
        prev = f" prev [{', '.join(kv(k) for k in resp.prev_kvs)}]" if resp.prev_kvs else ""
        return f"rev {resp.revision} deleted {resp.deleted}{prev}"
    if isinstance(resp, RangeResponse):
        return f"rev {resp.revision} [{', '.join(kv(k) for k in resp.kvs)}]"
    if isinstance(resp, TxnResponse):
        inner = "; ".join(response(r) for r in resp.responses)
        return f"rev {resp.revision} {'succeeded' if resp.succeeded else 'failed'} ({inner})"
    if isinstance(resp, LeaseGrantResponse):
        return f"rev {resp.revision} lease {resp.id}"
    if isinstance(resp, LeaseRevokeResponse):
        return f"rev {resp.revision}"
    if isinstance(resp, ErrorResponse):
        return f"error {resp.message!r}"
    return repr(resp)


def operation(op: Operation) -> str:
    ret = "?" if op.ret is None else f"{op.ret:g}"
    return f"client {op.client} [{op.call:g} .. {ret}] {request(op.request)} -> {response(op.response)}"


def state(s: State) -> str:
    leases = f" leases {sorted(s.leases)}" if s.leases else ""
    return f"rev {s.revision} {{{', '.join(kv(k) for k in s.kvs)}}}{leases}"

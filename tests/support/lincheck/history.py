"""The history format judged by the checker: what each client asked, when, and what it was told.

An ``Operation`` is one client request: the client's id, the time it was invoked (``call``), the time its
answer arrived (``ret``) and the answer (``response``). ``ret is None`` (with ``response is None``) means the
outcome is unknown: the request timed out or failed in a way that does not say whether it was applied.
Times are any comparable numbers from one clock shared by all clients (monotonic time in a real run, the
simulated clock in a simulation); each client is sequential, so its operations never overlap.

Requests and responses mirror etcd's v3 KV and lease API, reduced to the fields the model decides:

- ``Put(key, value, lease, prev_kv)`` -> ``PutResponse(revision, prev_kv)``;
- ``DeleteRange(key, range_end, prev_kv)`` -> ``DeleteRangeResponse(revision, deleted, prev_kvs)``;
- ``Range(key, range_end, serializable)`` -> ``RangeResponse(revision, kvs)``;
- ``Txn(compares, success, failure)`` -> ``TxnResponse(revision, succeeded, responses)``; the inner
  responses carry the txn's header revision;
- ``LeaseGrant(id)`` -> ``LeaseGrantResponse(revision, id)``; ``LeaseRevoke(id)`` -> ``LeaseRevokeResponse``;
- any request may get a definite ``ErrorResponse(message)`` (etcd's message text, e.g. a put on a lease that
  does not exist); a definite error is a known outcome: the request was not applied.

``range_end`` follows etcd: ``b""`` is the single key, ``b"\\0"`` every key >= key, otherwise [key, range_end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class KeyValue(NamedTuple):
    """One key as a response shows it (etcd's mvccpb.KeyValue without the fields the model does not decide)."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class DeleteRange:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Range:
    key: bytes
    range_end: bytes = b""
    serializable: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    """``target`` is one of value, version, create, mod, lease; ``op`` one of =, !=, >, <."""

    key: bytes
    target: str
    op: str
    operand: bytes | int


@dataclass(frozen=True, slots=True)
class Txn:
    compares: tuple[Compare, ...]
    success: tuple[Put | DeleteRange | Range, ...] = ()
    failure: tuple[Put | DeleteRange | Range, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    id: int


@dataclass(frozen=True, slots=True)
class LeaseRevoke:
    id: int


Request = Put | DeleteRange | Range | Txn | LeaseGrant | LeaseRevoke


@dataclass(frozen=True, slots=True)
class PutResponse:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteRangeResponse:
    revision: int
    deleted: int
    prev_kvs: tuple[KeyValue, ...] = ()


@dataclass(frozen=True, slots=True)
class RangeResponse:
    revision: int
    kvs: tuple[KeyValue, ...]


@dataclass(frozen=True, slots=True)
class TxnResponse:
    revision: int
    succeeded: bool
    responses: tuple[PutResponse | DeleteRangeResponse | RangeResponse, ...]


@dataclass(frozen=True, slots=True)
class LeaseGrantResponse:
    revision: int
    id: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeResponse:
    revision: int


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    message: str


Response = (
    PutResponse
    | DeleteRangeResponse
    | RangeResponse
    | TxnResponse
    | LeaseGrantResponse
    | LeaseRevokeResponse
    | ErrorResponse
)


@dataclass(frozen=True, slots=True)
class Operation:
    """One request of one client. ``ret``/``response`` are None when the outcome is unknown. ``session`` numbers
    the client's stays with one member (a client that fails over to another member starts a new one): what the
    client was told in one session does not bind serializable reads in the next (see check.py, rule 2a)."""

    client: int
    call: float
    ret: float | None
    request: Request
    response: Response | None
    session: int = 0

    def __post_init__(self) -> None:
        if (self.ret is None) != (self.response is None):
            raise ValueError("an operation has both a return time and a response, or neither")
        if self.ret is not None and self.ret < self.call:
            raise ValueError(f"an operation returns before it is called: {self}")

    @property
    def known(self) -> bool:
        return self.ret is not None


def is_read_only(request: Request) -> bool:
    """A request that cannot change the store (a Range, or a Txn whose branches only range)."""
    if isinstance(request, Range):
        return True
    if isinstance(request, Txn):
        return all(isinstance(op, Range) for op in request.success + request.failure)
    return False


def is_serializable_read(request: Request) -> bool:
    return isinstance(request, Range) and request.serializable

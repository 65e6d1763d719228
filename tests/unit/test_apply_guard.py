"""Apply never dies of an entry: the Applier on each backend (a real LMDB file; memory), fed entries no API
check refused.

Every case checks what a member relies on: the entry gets an error answer, the consistent index moves
past it, the next entry applies, and a reopen of the backend gives the same state.
"""

from __future__ import annotations

import pytest

from etcdx import errors
from etcdx.errors import StatusCode
from etcdx.mvcc import rows
from etcdx.mvcc.alarms import alarm_name
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.apply import ApplyFailed
from tests.support.store import Store

Alarm = pb.AlarmRequest


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def assert_survives(store: Store, before: tuple) -> None:
    """The failed entry changed nothing but the consistent index; the next entry applies; a reopen agrees."""
    revision, index, kvs, alarms = before
    assert store.state() == (revision, index + 1, kvs, alarms)
    assert store.put(b"after", b"v").header.revision == revision + 1
    after = store.state()
    store.reopen()
    assert store.state() == after


@pytest.mark.parametrize(
    ("action", "alarm", "message"),
    [
        (Alarm.ACTIVATE, -1, "etcdserver: unknown alarm type -1"),
        (Alarm.ACTIVATE, 3, "etcdserver: unknown alarm type 3"),
        (Alarm.ACTIVATE, 2**31 - 1, "etcdserver: unknown alarm type 2147483647"),
        (5, pb.NOSPACE, "etcdserver: unknown alarm action 5"),
        (-1, pb.NOSPACE, "etcdserver: unknown alarm action -1"),
    ],
)
def test_an_alarm_apply_cannot_hold_is_an_invalid_argument(store, action, alarm, message):
    store.put(b"a")
    before = store.state()
    result = store.apply(alarm=Alarm(action=action, memberID=2**64 - 1, alarm=alarm))
    assert isinstance(result, errors.EtcdError)
    assert (result.code, result.message) == (StatusCode.INVALID_ARGUMENT, message)
    assert_survives(store, before)


def test_activating_none_changes_nothing_as_in_etcd(store):
    before = store.state()
    response = store.apply(alarm=Alarm(action=Alarm.ACTIVATE, memberID=7, alarm=pb.NONE))
    assert list(response.alarms) == []
    assert_survives(store, before)


def test_deactivating_an_unknown_type_answers_an_empty_list(store):
    response = store.apply(alarm=Alarm(action=Alarm.DEACTIVATE, memberID=7, alarm=-1))
    assert list(response.alarms) == []


def test_bytes_that_do_not_parse_are_an_apply_failure(store):
    store.put(b"a")
    before = store.state()
    result = store.apply_data(b"\x0a\xff\xff\xff")
    assert isinstance(result, ApplyFailed)
    assert (result.code, result.message) == (StatusCode.INTERNAL, "etcdserver: request cannot be applied (DecodeError)")
    assert_survives(store, before)


def test_an_entry_nested_past_the_decoders_limit_is_an_apply_failure(store):
    txn = pb.TxnRequest()
    inner = txn
    for _ in range(60):
        inner = inner.success.add().request_txn
    inner.success.add().request_put.key = b"deep"
    body = txn.SerializeToString()
    field = InternalRequest.DESCRIPTOR.fields_by_name["txn"].number
    data = _varint(field << 3 | 2) + _varint(len(body)) + body
    before = store.state()
    assert isinstance(store.apply_data(data), ApplyFailed)
    assert_survives(store, before)


def test_a_failure_after_writing_leaves_what_was_written_as_one_revision(store, monkeypatch):
    """A bug that raises half-way through a txn: the member goes on, and its counter, index and backend agree."""
    store.put(b"a", b"1")
    original = store.kv.index.put

    def put(key, rev):
        if key == b"boom":
            raise ValueError("a bug in the key index")
        return original(key, rev)

    monkeypatch.setattr(store.kv.index, "put", put)
    ops = [pb.RequestOp(request_put=pb.PutRequest(key=k, value=b"2")) for k in (b"a", b"boom")]
    result = store.apply(txn=pb.TxnRequest(success=ops))
    assert isinstance(result, ApplyFailed) and isinstance(result.cause, ValueError)
    monkeypatch.undo()
    assert store.kv.current_revision == 3
    assert store.put(b"b", b"v").header.revision == 4
    after = store.state()
    assert after[2] == [(b"a", b"2", 3), (b"b", b"v", 4)]
    store.reopen()
    assert store.state() == after


class _FailingPuts:
    """A backend write transaction whose puts fail as the backend's storage fails."""

    def __init__(self, txn, failure: type[BaseException]) -> None:
        self._txn = txn
        self._failure = failure

    def __getattr__(self, name: str):
        return getattr(self._txn, name)

    def put(self, table: bytes, key: bytes, value: bytes) -> None:
        raise self._failure("injected: the backend cannot write")


def test_a_failing_backend_is_not_a_request_error(store, monkeypatch):
    failure = store.backend.storage_errors[0]
    begin_write = store.backend.begin_write
    monkeypatch.setattr(store.backend, "begin_write", lambda: _FailingPuts(begin_write(), failure))
    with pytest.raises(failure):
        store.apply(alarm=Alarm(action=Alarm.ACTIVATE, memberID=1, alarm=pb.NOSPACE))
    assert store.alarms.list() == []


def test_an_unknown_type_left_in_an_old_data_dir_is_listed_by_number_and_can_be_cleared(store):
    with store.backend.begin_write() as txn:
        rows.put_alarm(txn, 7, 3)
    store.reopen()
    assert [(m, alarm_name(a)) for m, a in store.alarms.list()] == [(7, "3")]
    response = store.apply(alarm=Alarm(action=Alarm.DEACTIVATE, memberID=7, alarm=3))
    assert [(a.memberID, a.alarm) for a in response.alarms] == [(7, 3)]
    store.reopen()
    assert store.alarms.list() == []

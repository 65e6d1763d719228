"""Hypothesis stateful test: KVStore on each backend (real LMDB; memory) against a plain model of etcd's KV
semantics.

The model keeps the whole keyspace at every revision (a dict per revision) and answers every request
from that; the store must give identical responses, also after compactions and reopening.
"""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from etcdx import errors
from etcdx.api.grpc import kv_checks
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.pb.mvccpb import kv_pb2
from tests.support.store import Store

KEYS = [b"a", b"a/1", b"a/2", b"b", b"c"]
keys = st.sampled_from(KEYS)
values = st.sampled_from([b"", b"x", b"y", b"zz"])
# None: a single key; b"\0": every key from; otherwise an explicit end (maybe before the key)
range_ends = st.sampled_from([None, b"\0", b"a0", b"b", b"d", b"a/"])


def in_range(key: bytes, start: bytes, end: bytes | None) -> bool:
    if end is None:
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


class Model:
    """etcd's keyspace history, naively: ``states[rev]`` is every key's KeyValue at revision rev."""

    def __init__(self) -> None:
        self.states: dict[int, dict[bytes, kv_pb2.KeyValue]] = {1: {}}
        self.rev = 1
        self.compacted = -1

    def now(self) -> dict[bytes, kv_pb2.KeyValue]:
        return self.states[self.rev]

    def range(self, key: bytes, end: bytes | None, revision: int = 0, limit: int = 0) -> pb.RangeResponse:
        if revision > self.rev:
            raise errors.ERR_FUTURE_REV
        at = self.rev if revision <= 0 else revision
        if at < self.compacted:
            raise errors.ERR_COMPACTED
        found = [kv for k, kv in sorted(self.states[at].items()) if in_range(k, key, end)]
        response = pb.RangeResponse(count=len(found), more=0 < limit < len(found))
        response.kvs.extend(found[:limit] if limit > 0 else found)
        response.header.revision = self.rev
        return response

    def write(self, changes: list[tuple[bytes, bytes | None]]) -> int:
        """Applies (key, value) puts and (key, None) deletes of existing keys as one revision."""
        if not changes:
            return self.rev
        state = dict(self.now())
        rev = self.rev + 1
        for key, value in changes:
            if value is None:
                del state[key]
                continue
            old = state.get(key)
            state[key] = kv_pb2.KeyValue(
                key=key,
                value=value,
                create_revision=old.create_revision if old else rev,
                mod_revision=rev,
                version=old.version + 1 if old else 1,
            )
        self.rev = rev
        self.states[rev] = state
        return rev

    def compact(self, revision: int) -> None:
        if revision <= self.compacted:
            raise errors.ERR_COMPACTED
        if revision > self.rev:
            raise errors.ERR_FUTURE_REV
        self.compacted = revision


def end_bytes(end: bytes | None) -> bytes:
    return b"" if end is None else end


ops = st.one_of(
    st.tuples(st.just("put"), keys, values),
    st.tuples(st.just("delete"), keys, range_ends),
    st.tuples(st.just("get"), keys, range_ends),
)


class KVStoreMachine(RuleBasedStateMachine):
    backend_kind = "lmdb"

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="etcdx-mvcc-")
        self.harness = Store(self.backend_kind, self.dir, commit_each=False)
        self.store = self.harness.kv
        self.model = Model()
        self.index = 0

    def teardown(self) -> None:
        self.harness.close()
        shutil.rmtree(self.dir)

    def apply(self, **request):
        self.index += 1
        return self.harness.apply(**request)

    def revisions(self):
        return st.integers(min_value=-1, max_value=self.model.rev + 1)

    @rule(key=keys, value=values, prev_kv=st.booleans())
    def put(self, key, value, prev_kv):
        expected = pb.PutResponse()
        if prev_kv and key in self.model.now():
            expected.prev_kv.CopyFrom(self.model.now()[key])
        expected.header.revision = self.model.write([(key, value)])
        assert self.apply(put=pb.PutRequest(key=key, value=value, prev_kv=prev_kv)) == expected

    @rule(key=keys, end=range_ends, prev_kv=st.booleans())
    def delete(self, key, end, prev_kv):
        doomed = [kv for k, kv in sorted(self.model.now().items()) if in_range(k, key, end)]
        expected = pb.DeleteRangeResponse(deleted=len(doomed))
        if prev_kv:
            expected.prev_kvs.extend(doomed)
        expected.header.revision = self.model.write([(kv.key, None) for kv in doomed])
        request = pb.DeleteRangeRequest(key=key, range_end=end_bytes(end), prev_kv=prev_kv)
        assert self.apply(delete_range=request) == expected

    @rule(data=st.data(), key=keys, end=range_ends, limit=st.integers(0, 3))
    def range(self, data, key, end, limit):
        revision = data.draw(self.revisions())
        request = pb.RangeRequest(key=key, range_end=end_bytes(end), revision=revision, limit=limit)
        try:
            expected = self.model.range(key, end, revision, limit)
        except errors.EtcdError as error:
            try:
                self.store.range(request)
            except errors.EtcdError as raised:
                assert type(raised) is type(error)
            else:
                raise AssertionError(f"expected {error}")
        else:
            assert self.store.range(request) == expected

    @rule(data=st.data())
    def compact(self, data):
        revision = data.draw(self.revisions())
        try:
            self.model.compact(revision)
        except errors.EtcdError as error:
            assert type(self.apply(compaction=pb.CompactionRequest(revision=revision))) is type(error)
        else:
            assert self.apply(compaction=pb.CompactionRequest(revision=revision)).header.revision == self.model.rev

    @rule(
        key=keys,
        version=st.integers(0, 2),
        success=st.lists(ops, max_size=3),
        failure=st.lists(ops, max_size=3),
    )
    def txn(self, key, version, success, failure):
        compare = pb.Compare(key=key, target=pb.Compare.VERSION, result=pb.Compare.EQUAL, version=version)
        request = pb.TxnRequest(compare=[compare])
        for branch, chosen in ((request.success, success), (request.failure, failure)):
            for kind, k, arg in chosen:
                op = branch.add()
                if kind == "put":
                    op.request_put.CopyFrom(pb.PutRequest(key=k, value=arg))
                elif kind == "delete":
                    op.request_delete_range.CopyFrom(pb.DeleteRangeRequest(key=k, range_end=end_bytes(arg)))
                else:
                    op.request_range.CopyFrom(pb.RangeRequest(key=k, range_end=end_bytes(arg)))
        try:
            kv_checks.check_txn(request, 128)
        except errors.EtcdError:
            return  # never reaches the store
        current = self.model.now().get(key)
        ok = (current.version if current else 0) == version
        expected = pb.TxnResponse(succeeded=ok)
        # run the branch against a scratch copy of the model state, then commit it as one revision
        state = dict(self.model.now())
        changes: list[tuple[bytes, bytes | None]] = []
        next_rev = self.model.rev + 1
        for kind, k, arg in success if ok else failure:
            out = expected.responses.add()
            if kind == "put":
                old = state.get(k)
                state[k] = kv_pb2.KeyValue(
                    key=k,
                    value=arg,
                    create_revision=old.create_revision if old else next_rev,
                    mod_revision=next_rev,
                    version=old.version + 1 if old else 1,
                )
                changes.append((k, arg))
                out.response_put.header.revision = next_rev
            elif kind == "delete":
                doomed = sorted(x for x in state if in_range(x, k, arg))
                for x in doomed:
                    del state[x]
                changes.extend((x, None) for x in doomed)
                out.response_delete_range.deleted = len(doomed)
                out.response_delete_range.header.revision = next_rev if changes else self.model.rev
            else:
                found = [kv for x, kv in sorted(state.items()) if in_range(x, k, arg)]
                out.response_range.kvs.extend(found)
                out.response_range.count = len(found)
                out.response_range.header.revision = next_rev if changes else self.model.rev
        expected.header.revision = self.model.write(changes)
        assert self.apply(txn=request) == expected

    @rule()
    def commit(self):
        """Ends the batch transaction; every other rule reads through it while it is open."""
        self.store.commit()

    @rule()
    def reopen(self):
        self.harness.reopen()
        self.store = self.harness.kv

    @precondition(lambda self: self.index > 0)
    @rule()
    def replay_last_entry(self):
        replayed = InternalRequest(put=pb.PutRequest(key=b"a", value=b"dup"))
        with self.store.apply_batch():
            assert self.harness.applier.apply_request(self.index, replayed) is None

    @invariant()
    def same_revisions(self):
        assert self.store.current_revision == self.model.rev
        assert self.store.compact_revision == self.model.compacted
        assert self.store.consistent_index == self.index


class MemoryKVStoreMachine(KVStoreMachine):
    backend_kind = "memory"


KVStoreMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
MemoryKVStoreMachine.TestCase.settings = KVStoreMachine.TestCase.settings
test_kvstore_matches_model = KVStoreMachine.TestCase
test_kvstore_on_memory_matches_model = MemoryKVStoreMachine.TestCase

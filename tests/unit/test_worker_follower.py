"""The read worker's key index follower (etcdx/worker/follower.py) against a real LMDB file written by the real
KVStore: after each follow, every Range a worker would serve (SnapshotStore) is the member's answer byte for byte,
at every revision from the compacted one to the current one, errors included; across puts, deletes, txns and
compactions (whole, in batches, and ones that overtake the follower)."""

from __future__ import annotations

import random

import pytest

from etcdx.errors import EtcdError
from etcdx.mvcc.schema import KEY_DB
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.worker.follower import IndexFollower
from etcdx.worker.snapshot_store import SnapshotStore
from tests.support.store import Store

KEYS = [b"a", b"a/1", b"a/2", b"b", b"b/1", b"c"]
IDENTITY = (7, 9, 3)  # cluster_id, member_id, raft_term


def answer(call):
    try:
        return call()
    except EtcdError as exc:
        return ("error", exc.code, exc.message)


def requests_at(revisions: list[int]) -> list[pb.RangeRequest]:
    found = []
    for rev in revisions:
        found += [
            pb.RangeRequest(key=b"a", revision=rev),
            pb.RangeRequest(key=b"a", range_end=b"b", revision=rev),
            pb.RangeRequest(key=b"\x00", range_end=b"\x00", revision=rev, limit=2),
            pb.RangeRequest(key=b"a", range_end=b"c", revision=rev, count_only=True),
            pb.RangeRequest(key=b"a", range_end=b"\x00", revision=rev, keys_only=True),
            pb.RangeRequest(
                key=b"\x00", range_end=b"\x00", revision=rev, sort_target=pb.RangeRequest.MOD, sort_order=2
            ),
            pb.RangeRequest(key=b"b", range_end=b"c", revision=rev, min_mod_revision=3),
        ]
    return found


def check_same(store: Store, follower: IndexFollower) -> None:
    """The follower, caught up now, answers as the member's store."""
    kv = store.kv
    with store.backend.begin_read() as view:
        follower.follow(view)
        assert follower.current_revision == kv.current_revision
        assert follower.compact_revision == kv.compact_revision
        reader = SnapshotStore(follower, view)
        low = max(kv.compact_revision - 1, 0)
        for request in requests_at(list(range(low, kv.current_revision + 2))):
            theirs = answer(lambda r=request: reader.range_encoded(r, IDENTITY))
            ours = answer(lambda r=request: kv.range_encoded(r, IDENTITY))
            assert theirs == ours, request


def random_write(store: Store, rng: random.Random) -> None:
    key = rng.choice(KEYS)
    pick = rng.random()
    if pick < 0.55:
        store.put(key, bytes([rng.randrange(256)]) * rng.randrange(1, 4))
    elif pick < 0.75:
        store.delete(key, rng.choice([b"", key + b"\xff"]))
    elif pick < 0.9:
        other = rng.choice(KEYS)
        store.apply(
            txn=pb.TxnRequest(
                success=[
                    pb.RequestOp(request_put=pb.PutRequest(key=key, value=b"t")),
                    pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=other)),
                ]
            )
        )
    else:
        current, compacted = store.kv.current_revision, store.kv.compact_revision
        if current > compacted + 1:
            store.compact(rng.randrange(max(compacted + 1, 1), current + 1))


def stored_bytes(store: Store) -> int:
    with store.backend.begin_read() as view:
        return sum(len(key) + len(value) for key, value in view.scan(KEY_DB))


def test_catch_up_after_puts_and_deletes(tmp_path):
    store = Store("lmdb", str(tmp_path / "db"))
    follower = IndexFollower()
    check_same(store, follower)  # empty
    store.put(b"a", b"1")
    store.put(b"a/1", b"x")
    check_same(store, follower)
    assert follower.bytes_read == stored_bytes(store) > 0
    store.put(b"a", b"2")
    store.delete(b"a/1")
    store.put(b"a/1", b"again")
    store.delete(b"a", b"b")  # deletes a and a/1
    check_same(store, follower)
    assert follower.rebuilds == 0
    assert follower.bytes_read == stored_bytes(store)  # each row once
    store.close()


def test_follows_compaction_it_has_seen(tmp_path):
    store = Store("lmdb", str(tmp_path / "db"))
    follower = IndexFollower()
    for i in range(6):
        store.put(b"a", b"%d" % i)
    store.delete(b"a")
    store.put(b"b", b"1")
    check_same(store, follower)
    store.compact(store.kv.current_revision - 1)
    check_same(store, follower)
    assert follower.rebuilds == 0
    store.close()


def test_compaction_that_overtakes_the_follower_rebuilds(tmp_path):
    store = Store("lmdb", str(tmp_path / "db"))
    follower = IndexFollower()
    store.put(b"a", b"1")
    check_same(store, follower)
    store.put(b"a", b"2")
    store.delete(b"a")  # the tombstone the follower never sees: compacted away below
    store.put(b"b", b"1")
    store.put(b"b", b"2")
    store.compact(store.kv.current_revision)
    check_same(store, follower)
    assert follower.rebuilds == 1
    store.close()


def test_compaction_in_batches(tmp_path):
    """A compaction that deletes its rows over several commits (--experimental-compaction-batch-limit), the
    follower looking in between."""
    store = Store("lmdb", str(tmp_path / "db"))
    follower = IndexFollower()
    for i in range(30):
        store.put(KEYS[i % len(KEYS)], b"%d" % i)
        if i % 7 == 0:
            store.delete(KEYS[(i + 1) % len(KEYS)])
    store.kv.compaction_batch_limit = 4
    store.compact(store.kv.current_revision - 2)
    while store.kv.compaction_pending:
        check_same(store, follower)
        with store.kv.apply_batch():
            store.kv.continue_compaction()
        store.kv.commit()
    check_same(store, follower)
    store.close()


@pytest.mark.parametrize("seed", range(12))
def test_random_histories(tmp_path, seed):
    rng = random.Random(seed)
    store = Store("lmdb", str(tmp_path / "db"))
    follower = IndexFollower()
    for _ in range(120):
        random_write(store, rng)
        if rng.random() < 0.2:
            check_same(store, follower)
    check_same(store, follower)
    store.close()

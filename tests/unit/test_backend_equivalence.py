"""The memory backend stands in for the LMDB file: a store on each, fed the same seeded stream of entries
(the differential tests' KV operations, leases, alarms, bytes that do not parse) and committing at the same
points, gives the same answer to every entry and every read, and ends with equal snapshot images. Snapshot
images restore, on either backend, to a store that answers as the original does.
"""

from __future__ import annotations

import random

import pytest

from etcdx import errors
from etcdx.mvcc import backend_image
from etcdx.mvcc.memory_backend import MemoryBackend
from etcdx.mvcc.schema import TABLES
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from tests.compat import opgen
from tests.support.store import BACKENDS, Store

SEEDS = range(6)
Alarm = pb.AlarmRequest
_KINDS = {"Put": "put", "DeleteRange": "delete_range", "Txn": "txn", "Compact": "compaction"}


def entries(seed: int, length: int) -> list[bytes]:
    """``length`` serialized log entries: mostly KV operations, some lease and alarm requests, and garbage."""
    r = random.Random(seed)
    ops = [op for op in opgen.generate(seed, base_rev=1, length=2 * length) if op.method != "Range"]
    out = []
    for op in ops[:length]:
        roll = r.random()
        if roll < 0.08:
            out.append(InternalRequest(lease_grant=pb.LeaseGrantRequest(ID=r.randint(1, 4), TTL=r.randint(0, 90))))
        elif roll < 0.12:
            out.append(InternalRequest(lease_revoke=pb.LeaseRevokeRequest(ID=r.randint(1, 4))))
        elif roll < 0.15:
            action = r.choice([Alarm.ACTIVATE, Alarm.DEACTIVATE, Alarm.DEACTIVATE, Alarm.GET, 9])
            out.append(InternalRequest(alarm=Alarm(action=action, memberID=r.randint(1, 2), alarm=r.randint(0, 3))))
        elif roll < 0.17:
            out.append(r.randbytes(r.randint(1, 12)))
            continue
        else:
            request = InternalRequest(**{_KINDS[op.method]: op.request})
            if op.method == "Put" and r.random() < 0.3:
                request.put.lease = r.randint(1, 4)
            out.append(request)
    return [e if isinstance(e, bytes) else e.SerializeToString() for e in out]


def answer(result) -> object:
    """What a client would see of an entry's result: the response bytes, or the error's code and message."""
    if isinstance(result, errors.EtcdError):
        return type(result).__name__, result.code, result.message
    return None if result is None else result.SerializeToString()


def reads(store: Store) -> list[object]:
    """Every read a client can make of the state: each revision still readable, watch history, leases."""
    kv = store.kv
    out = []
    for rev in range(max(kv.compact_revision, 1), kv.current_revision + 1):
        request = pb.RangeRequest(key=b"\0", range_end=b"\0", revision=rev)
        out.append(kv.range_encoded(request, (0, 0, 0)))
    first = max(kv.compact_revision, 1)
    out.append(
        [(rev, [e.SerializeToString() for e in events]) for rev, events in kv.history(first, kv.current_revision)]
    )
    out.append(sorted((lease.id, lease.ttl, sorted(lease.keys)) for lease in store.lessor.leases.values()))
    out.append((kv.current_revision, kv.compact_revision, kv.consistent_index, store.alarms.list()))
    return out


def feed(stores: list[Store], stream: list[bytes], seed: int) -> None:
    """Applies ``stream`` to every store, in apply batches of random sizes with commits at random points;
    asserts every entry's answer and the reads after every batch are the same on all of them."""
    r = random.Random(seed)
    i = 0
    while i < len(stream):
        batch = stream[i : i + r.randint(1, 8)]
        answers = []
        for store in stores:
            with store.kv.apply_batch():
                answers.append([answer(store.applier.apply(i + n + 1, data)) for n, data in enumerate(batch)])
        assert all(a == answers[0] for a in answers), f"entries {i + 1}..{i + len(batch)}"
        assert all(reads(s) == reads(stores[0]) for s in stores)
        i += len(batch)
        if r.random() < 0.4:
            for store in stores:
                store.kv.commit()
    for store in stores:
        store.kv.commit()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_memory_store_and_an_lmdb_store_answer_alike_and_hold_the_same_tables(tmp_path, seed):
    lmdb, memory = Store("lmdb", str(tmp_path), commit_each=False), Store("memory", "", commit_each=False)
    try:
        feed([lmdb, memory], entries(seed, 200), seed)
        images = lmdb.backend.snapshot(), memory.backend.snapshot()
        assert backend_image.decode(images[0]) == backend_image.decode(images[1])
        assert images[0] == images[1]
        lmdb.reopen()
        memory.reopen()
        assert reads(lmdb) == reads(memory)
    finally:
        lmdb.close()
        memory.close()


@pytest.mark.parametrize("source", BACKENDS)
@pytest.mark.parametrize("target", BACKENDS)
def test_a_snapshot_restores_to_a_store_that_goes_on_as_the_original(tmp_path, source, target):
    stream = entries(7, 160)
    original = Store(source, str(tmp_path / "source"), commit_each=False)
    restored = Store(target, str(tmp_path / "target"), commit_each=False)
    try:
        feed([restored], entries(8, 20), 8)  # rows the restore must replace, and an alarm it must clear
        restored.apply(alarm=Alarm(action=Alarm.ACTIVATE, memberID=9, alarm=pb.CORRUPT))
        feed([original], stream[:100], 7)
        image = original.backend.snapshot()
        restored.restore(image)
        assert reads(restored) == reads(original)
        assert restored.backend.snapshot() == image
        feed([original, restored], stream[100:], 9)
        assert restored.backend.snapshot() == original.backend.snapshot()
    finally:
        original.close()
        restored.close()


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_damaged_image_is_refused_and_changes_nothing(tmp_path, kind):
    store = Store(kind, str(tmp_path))
    try:
        store.put(b"a", b"1")
        image = store.backend.snapshot()
        raw = bytearray(image)
        raw[len(raw) // 2] ^= 0xFF
        for bad in (b"", image[:-3], bytes(raw), image + b"x"):
            with pytest.raises(ValueError):
                store.restore(bad)
        store.reopen()
        assert store.keys() == [b"a"] and store.backend.snapshot() == image
    finally:
        store.close()


def test_an_image_lists_every_table_and_opens_as_a_memory_backend(tmp_path):
    assert backend_image.decode(MemoryBackend().snapshot()) == {name: [] for name in TABLES}
    store = Store("lmdb", str(tmp_path))
    try:
        feed([store], entries(3, 40), 3)
        image = store.backend.snapshot()
    finally:
        store.close()
    tables = backend_image.decode(image)
    assert list(tables) == list(TABLES) and all(rows == sorted(rows) for rows in tables.values())
    assert MemoryBackend.from_snapshot(image).snapshot() == image

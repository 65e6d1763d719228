"""Watch streams of etcd 3.5.1 and etcdx for the same seeded workloads must tell the same story.

Per watcher we compare the created reply, every event (type, kv, prev_kv) in order, and the
cancel / compaction replies. How events are grouped into responses is not compared: etcd itself
batches catch-up events by timing (its sync loop), but each revision's events must stay together,
which the test checks on both servers.
"""

from __future__ import annotations

import random

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from etcdx.mvcc.keys import prefix_end
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.compat.watch_client import RecordingWatch
from tests.support.procs import etcd_process, etcdx_process

SEEDS = range(12)
Create = rpc_pb2.WatchCreateRequest


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("watchdiff")
    with etcd_process(tmp).start() as etcd, etcdx_process(tmp).start() as etcdx:
        yield etcd, etcdx


def writes(rng: random.Random, keys: list[bytes], count: int) -> list[tuple[str, object]]:
    ops = []
    for _ in range(count):
        roll = rng.random()
        key = rng.choice(keys)
        if roll < 0.6:
            ops.append(("Put", rpc_pb2.PutRequest(key=key, value=b"v%d" % rng.randrange(5))))
        elif roll < 0.8:
            end = prefix_end(key) if rng.random() < 0.5 else b""
            ops.append(("DeleteRange", rpc_pb2.DeleteRangeRequest(key=key, range_end=end)))
        else:
            a, b = rng.sample(keys, 2)
            txn = rpc_pb2.TxnRequest(
                success=[
                    rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=a, value=b"t")),
                    rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b)),
                ]
            )
            ops.append(("Txn", txn))
    return ops


def watch_spec(rng: random.Random, keys: list[bytes], prefix: bytes, base: int, head: int) -> Create:
    key = rng.choice(keys)
    shape = rng.random()
    if shape < 0.4:
        create = Create(key=key)
    elif shape < 0.7:
        create = Create(key=key, range_end=prefix_end(key))
    elif shape < 0.85:
        create = Create(key=prefix, range_end=prefix_end(prefix))
    else:
        create = Create(key=key, range_end=b"\x00")
    roll = rng.random()
    if roll < 0.6:
        create.start_revision = rng.randint(max(1, base - 2), head + 2)
    elif roll < 0.7:
        create.start_revision = rng.choice([-1, -5])  # negative starts: etcd replays no history
    elif roll < 0.8:
        create.start_revision = head + rng.randint(3, 8)  # a future start: nothing before it
    create.prev_kv = rng.random() < 0.5
    if rng.random() < 0.2:
        create.filters.append(rng.choice([Create.NOPUT, Create.NODELETE]))
    return create


def story(watch: RecordingWatch, watch_ids: list[int]) -> dict[int, list]:
    """Per watch id: created/cancel replies and the flattened events, with server identity dropped."""
    stories: dict[int, list] = {i: [] for i in watch_ids}
    for response in watch.responses:
        if response.watch_id not in stories:
            continue
        revisions = [e.kv.mod_revision for e in response.events]
        assert revisions == sorted(revisions), "events out of revision order within a response"
        if response.created or response.canceled or response.compact_revision:
            stories[response.watch_id].append(
                ("control", response.created, response.canceled, response.compact_revision, response.cancel_reason)
            )
        for event in response.events:
            stories[response.watch_id].append(("event", MessageToDict(event, preserving_proto_field_name=True)))
    return stories


def revisions_never_split(watch: RecordingWatch) -> bool:
    seen: dict[int, set[int]] = {}
    for response in watch.responses:
        revisions = {e.kv.mod_revision for e in response.events}
        earlier = seen.setdefault(response.watch_id, set())
        if earlier & revisions and not response.fragment:
            return False
        earlier |= revisions
    return True


@pytest.mark.parametrize("seed", SEEDS)
def test_watch_streams_match_etcd(servers, seed):
    rng = random.Random(seed)
    prefix = b"w%03d/" % seed
    keys = [prefix + s for s in (b"a", b"a/1", b"a/2", b"b", b"c")]
    kvs = [rpc_pb2_grpc.KVStub(grpc.insecure_channel(s.endpoint)) for s in servers]
    base = kvs[0].Range(rpc_pb2.RangeRequest(key=b"x")).header.revision

    def apply(ops):
        for method, request in ops:
            results = []
            for kv in kvs:
                try:
                    results.append(getattr(kv, method)(request).header.revision)
                except grpc.RpcError as exc:
                    results.append(exc.details())
            assert results[0] == results[1]

    apply(writes(rng, keys, 15))
    head = kvs[0].Range(rpc_pb2.RangeRequest(key=b"x")).header.revision
    if seed % 3 == 0:
        apply([("Compact", rpc_pb2.CompactionRequest(revision=base + 3))])
    specs = [watch_spec(rng, keys, prefix, base, head) for _ in range(6)]
    later = writes(rng, keys, 25)
    watches = [RecordingWatch(s.endpoint) for s in servers]
    try:
        ids = []
        for spec in specs:
            replies = [w.create(spec) for w in watches]
            assert replies[0].watch_id == replies[1].watch_id
            assert replies[0].header.revision == replies[1].header.revision
            ids.append(replies[0].watch_id)
        apply(later)
        if rng.random() < 0.5:
            for w in watches:
                w.send(rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=ids[0])))
        for w in watches:
            w.wait_quiet()
        expected, actual = story(watches[0], ids), story(watches[1], ids)
        for watch_id in ids:
            assert actual[watch_id] == expected[watch_id], f"seed {seed} watch {watch_id}"
        assert revisions_never_split(watches[0]) and revisions_never_split(watches[1])
    finally:
        for w in watches:
            w.close()

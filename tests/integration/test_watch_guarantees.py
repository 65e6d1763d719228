"""The watch guarantees under load: 1,000 watchers on 20 streams, concurrent writers, compactions,
streams that disconnect and resume; every watcher judged by tests/support/watch_checker.py."""

from __future__ import annotations

import random
import threading

import grpc
import pytest

from etcdx.mvcc.keys import prefix_end
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.compat.watch_client import RecordingWatch
from tests.support.watch_checker import DELETE, PUT, Segment, check

STREAMS, WATCHERS_PER_STREAM, WRITERS, WRITES_PER_WRITER = 20, 50, 4, 150
KEYS = [b"g/%02d" % i for i in range(40)]


class History:
    """revision -> events, from the writers' acknowledged answers."""

    def __init__(self) -> None:
        self.events: dict[int, list[tuple[int, bytes, bytes]]] = {}
        self.lock = threading.Lock()

    def record(self, revision: int, events: list[tuple[int, bytes, bytes]]) -> None:
        if events:
            with self.lock:
                assert revision not in self.events
                self.events[revision] = events


def writer(endpoint: str, seed: int, history: History, errors: list) -> None:
    rng = random.Random(seed)
    channel = grpc.insecure_channel(endpoint)
    kv = rpc_pb2_grpc.KVStub(channel)
    try:
        for i in range(WRITES_PER_WRITER):
            roll = rng.random()
            key = rng.choice(KEYS)
            if roll < 0.6:
                value = b"w%d-%d" % (seed, i)
                response = kv.Put(rpc_pb2.PutRequest(key=key, value=value))
                history.record(response.header.revision, [(PUT, key, value)])
            elif roll < 0.8:
                response = kv.DeleteRange(
                    rpc_pb2.DeleteRangeRequest(key=key[:-1], range_end=prefix_end(key[:-1]), prev_kv=True)
                )
                history.record(response.header.revision, [(DELETE, p.key, b"") for p in response.prev_kvs])
            else:
                a, b = rng.sample(KEYS, 2)
                response = kv.Txn(
                    rpc_pb2.TxnRequest(
                        success=[
                            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=a, value=b"t%d" % i)),
                            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b, value=b"u%d" % i)),
                        ]
                    )
                )
                history.record(response.header.revision, [(PUT, a, b"t%d" % i), (PUT, b, b"u%d" % i)])
            if seed == 0 and i % 50 == 49:
                current = kv.Range(rpc_pb2.RangeRequest(key=b"g/")).header.revision
                kv.Compact(rpc_pb2.CompactionRequest(revision=current - 40))
    except Exception as exc:  # reported by the test, not swallowed
        errors.append(exc)
    finally:
        channel.close()


def random_spec(rng: random.Random, head: int) -> tuple[bytes, bytes, int]:
    key = rng.choice(KEYS)
    shape = rng.random()
    if shape < 0.4:
        end = b""
    elif shape < 0.8:
        end = prefix_end(key[:-1])
        key = key[:-1]
    else:
        end = b"\x00"
    start = 0 if rng.random() < 0.5 else max(1, head - rng.randint(0, 30))
    return key, end, start


def open_stream(endpoint, specs) -> tuple[RecordingWatch, list[Segment]]:
    watch = RecordingWatch(endpoint)
    segments = []
    for key, end, start in specs:
        created = watch.create(rpc_pb2.WatchCreateRequest(key=key, range_end=end, start_revision=start))
        assert created.created and not created.canceled
        segment = Segment(
            key, None if not end else (b"" if end == b"\x00" else end), start or created.header.revision + 1
        )
        segments.append(segment)
    return watch, segments


def split(watch: RecordingWatch, segments: list[Segment]) -> None:
    by_id: dict[int, list] = {}
    for response in watch.responses:
        if not response.created:
            by_id.setdefault(response.watch_id, []).append(response)
    for watch_id, segment in enumerate(segments):
        segment.responses = by_id.get(watch_id, [])


@pytest.mark.slow
def test_thousand_watchers_get_exactly_their_events(etcdx_server):
    endpoint = etcdx_server.endpoint
    rng = random.Random(2026)
    kv = rpc_pb2_grpc.KVStub(grpc.insecure_channel(endpoint))
    for key in KEYS:
        kv.Put(rpc_pb2.PutRequest(key=key, value=b"init"))
    history = History()
    head = kv.Range(rpc_pb2.RangeRequest(key=b"g/")).header.revision
    streams = [
        open_stream(endpoint, [random_spec(rng, head) for _ in range(WATCHERS_PER_STREAM)]) for _ in range(STREAMS)
    ]
    errors: list = []
    writers = [threading.Thread(target=writer, args=(endpoint, s, history, errors)) for s in range(WRITERS)]
    for t in writers:
        t.start()
    finished: list[Segment] = []
    resumed = []
    for watch, segments in streams[:5]:  # these disconnect mid-run and resume on new streams
        threading.Event().wait(0.3)
        watch.close()
        split(watch, segments)
        specs = []
        for segment in segments:
            segment.stayed_open = False
            finished.append(segment)
            seen = [e.kv.mod_revision for r in segment.responses for e in r.events]
            compacted = any(r.compact_revision for r in segment.responses)
            if not compacted:
                start = seen[-1] + 1 if seen else segment.start_revision
                end = b"\x00" if segment.end == b"" else (segment.end or b"")
                specs.append((segment.key, end, start))
        resumed.append(open_stream(endpoint, specs))
    for t in writers:
        t.join(timeout=120)
    assert errors == []
    for watch, _ in streams[5:] + resumed:
        watch.wait_quiet()
    final = kv.Range(rpc_pb2.RangeRequest(key=b"g/")).header.revision
    for watch, segments in streams[5:] + resumed:
        split(watch, segments)
        finished.extend(segments)
        watch.close()
    # the initial puts are history too
    for i, key in enumerate(KEYS):
        history.record(2 + i, [(PUT, key, b"init")])
    violations = {}
    for n, segment in enumerate(finished):
        found = check(history.events, segment, final)
        if found:
            violations[n] = found
    assert len(finished) >= STREAMS * WATCHERS_PER_STREAM
    assert violations == {}, f"{len(violations)} watchers violated guarantees, e.g. {next(iter(violations.values()))}"


def test_checker_catches_a_dropped_and_a_repeated_event():
    history = {5: [(PUT, b"a", b"1")], 6: [(PUT, b"a", b"2")], 7: [(DELETE, b"a", b"")]}

    def response(rev, etype, value=b""):
        r = rpc_pb2.WatchResponse(watch_id=0)
        e = r.events.add()
        e.type, e.kv.key, e.kv.mod_revision, e.kv.value = etype, b"a", rev, value
        return r

    good = [response(5, PUT, b"1"), response(6, PUT, b"2"), response(7, DELETE)]
    assert check(history, Segment(b"a", None, 5, good), 7) == []
    dropped = [good[0], good[2]]
    assert any("gap" in v for v in check(history, Segment(b"a", None, 5, dropped), 7))
    repeated = [good[0], good[1], good[1], good[2]]
    assert any("twice" in v for v in check(history, Segment(b"a", None, 5, repeated), 7))
    reordered = [good[1], good[0], good[2]]
    assert any("order" in v for v in check(history, Segment(b"a", None, 5, reordered), 7))

"""The campaign's traffic: recording KV clients and recording watchers, each failing over between endpoints.

``KVClient``: one sequential client (waiting ``pace`` seconds between operations) issuing puts,
compare-and-put txns, deletes, linearizable and serializable ranges on a few keys under ``prefix``, recorded
as the linearizability checker's history (tests/support/lincheck/history.py). A write whose call failed in
any way is recorded with an unknown outcome (it may have been applied); a failed read is left out. On an
error the client moves to the next endpoint, in a new session (Operation.session). Every value is unique
(client number and sequence), so a watch event names the write it comes from.

``Watcher``: one watch on the prefix at a time, from revision 1 at first; when its stream breaks it opens a
new one on the next endpoint from the revision after the last event it got. Each stream is one
watch_checker.Segment; ``stop`` closes the open one (it stayed open: it must have everything up to the end).
"""

from __future__ import annotations

import queue
import random
import threading
import time
from dataclasses import dataclass, field

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.lincheck.history import (
    Compare,
    DeleteRange,
    DeleteRangeResponse,
    KeyValue,
    Operation,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Txn,
    TxnResponse,
)
from tests.support.watch_checker import Segment

CALL_TIMEOUT = 3.0


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _kv(kv) -> KeyValue:
    return KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


@dataclass
class KVClient:
    number: int
    endpoints: list[str]
    keys: list[bytes]
    seed: int
    pace: float = 0.0
    history: list[Operation] = field(default_factory=list)
    errors: int = 0
    session: int = 0  # the failovers so far: the operations of one session went to one endpoint

    def run(self, stop: threading.Event) -> None:
        rng = random.Random(self.seed)
        at = self.number % len(self.endpoints)
        channel = grpc.insecure_channel(self.endpoints[at])
        n = 0
        try:
            while not stop.is_set():
                n += 1
                if not self._one(rpc_pb2_grpc.KVStub(channel), rng, n):
                    self.errors += 1
                    self.session += 1
                    channel.close()
                    at = (at + 1) % len(self.endpoints)
                    channel = grpc.insecure_channel(self.endpoints[at])
                    stop.wait(0.05)
                elif self.pace:
                    stop.wait(self.pace)
        finally:
            channel.close()

    def _one(self, kv: rpc_pb2_grpc.KVStub, rng: random.Random, n: int) -> bool:
        key = rng.choice(self.keys)
        value = b"c%d-%d" % (self.number, n)
        kind = rng.random()
        if kind < 0.3:
            request = Put(key, value)
            call = lambda: kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=CALL_TIMEOUT)  # noqa: E731
            answer = lambda r: PutResponse(r.header.revision)  # noqa: E731
        elif kind < 0.4:
            request = DeleteRange(key)
            call = lambda: kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=key), timeout=CALL_TIMEOUT)  # noqa: E731
            answer = lambda r: DeleteRangeResponse(r.header.revision, r.deleted)  # noqa: E731
        elif kind < 0.55:
            version = rng.randrange(0, 3)
            request = Txn((Compare(key, "version", "=", version),), success=(Put(key, value),))
            proto = rpc_pb2.TxnRequest(
                compare=[
                    rpc_pb2.Compare(
                        key=key, target=rpc_pb2.Compare.VERSION, result=rpc_pb2.Compare.EQUAL, version=version
                    )
                ],
                success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))],
            )
            call = lambda: kv.Txn(proto, timeout=CALL_TIMEOUT)  # noqa: E731

            def answer(r):
                responses = tuple(PutResponse(r.header.revision) for _ in r.responses)
                return TxnResponse(r.header.revision, r.succeeded, responses)

        else:
            serializable = kind >= 0.85
            request = Range(key, serializable=serializable)
            proto_range = rpc_pb2.RangeRequest(key=key, serializable=serializable)
            call = lambda: kv.Range(proto_range, timeout=CALL_TIMEOUT)  # noqa: E731
            answer = lambda r: RangeResponse(r.header.revision, tuple(_kv(x) for x in r.kvs))  # noqa: E731
        started = time.monotonic()
        try:
            response = call()
        except grpc.RpcError:
            if not isinstance(request, Range):
                self.history.append(Operation(self.number, started, None, request, None, self.session))
            return False
        self.history.append(Operation(self.number, started, time.monotonic(), request, answer(response), self.session))
        return True


@dataclass
class Watcher:
    number: int
    endpoints: list[str]
    prefix: bytes
    segments: list[Segment] = field(default_factory=list)
    breaks: int = 0

    def __post_init__(self) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._call = None
        self._lock = threading.Lock()
        self._stopping = False

    def last_revision(self) -> int:
        """The revision of the last event received on any stream (0 before any)."""
        for segment in reversed(self.segments):
            events = [e for r in segment.responses for e in r.events]
            if events:
                return events[-1].kv.mod_revision
        return 0

    def run(self, stop: threading.Event) -> None:
        at = self.number % len(self.endpoints)
        while not stop.is_set():
            segment = Segment(self.prefix, prefix_end(self.prefix), self.last_revision() + 1)
            self._stream(self.endpoints[at], segment)
            if not self._stopping:
                segment.stayed_open = False
                self.breaks += 1
                at = (at + 1) % len(self.endpoints)
                stop.wait(0.1)

    def _stream(self, endpoint: str, segment: Segment) -> None:
        create = rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=segment.key, range_end=segment.end, start_revision=segment.start_revision
            )
        )
        done = threading.Event()

        def requests():
            yield create
            done.wait()

        with grpc.insecure_channel(endpoint) as channel:
            call = rpc_pb2_grpc.WatchStub(channel).Watch(requests())
            with self._lock:
                if self._stopping:
                    call.cancel()
                self._call = call
            try:
                created = False
                for response in call:
                    if response.created and not created:
                        created = True
                        self.segments.append(segment)
                        if not response.events:
                            continue
                    if response.canceled and not response.compact_revision:
                        return
                    segment.responses.append(response)
            except grpc.RpcError:
                return
            finally:
                done.set()
                with self._lock:
                    self._call = None

    def stop(self) -> None:
        """Ends the open stream as a segment that stayed open to the end."""
        with self._lock:
            self._stopping = True
            if self._call is not None:
                self._call.cancel()


def merged_history(clients: list[KVClient]) -> list[Operation]:
    """Every client's operations, in the order they were called."""
    return sorted((op for c in clients for op in c.history), key=lambda op: op.call)


def start_threads(targets, stop: threading.Event) -> list[threading.Thread]:
    threads = [threading.Thread(target=t.run, args=(stop,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    return threads

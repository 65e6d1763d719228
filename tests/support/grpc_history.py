"""Clients of a real cluster that record what they asked, when, and what they were told, as the
linearizability checker's history (tests/support/lincheck/history.py).

Each client is sequential and holds one endpoint; on an error it moves to the next endpoint. A write whose
call failed in any way is recorded with an unknown outcome (it may have been applied: the checker lets it
take effect or not); a failed read is left out (it changed nothing). Times come from one monotonic clock.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.lincheck.history import (
    Compare,
    KeyValue,
    Operation,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Txn,
    TxnResponse,
)

CALL_TIMEOUT = 3.0


def _kv(kv) -> KeyValue:
    return KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


@dataclass
class RecordingClient:
    """One sequential client; ``run`` issues random puts, linearizable ranges and compare-and-put txns on
    ``keys`` until ``stop`` is set."""

    number: int
    endpoints: list[str]
    keys: list[bytes]
    seed: int
    history: list[Operation] = field(default_factory=list)
    errors: int = 0

    def run(self, stop: threading.Event) -> None:
        rng = random.Random(self.seed)
        at = self.number % len(self.endpoints)
        channel = grpc.insecure_channel(self.endpoints[at])
        n = 0
        try:
            while not stop.is_set():
                n += 1
                ok = self._one(rpc_pb2_grpc.KVStub(channel), rng, n)
                if not ok:
                    self.errors += 1
                    channel.close()
                    at = (at + 1) % len(self.endpoints)
                    channel = grpc.insecure_channel(self.endpoints[at])
                    stop.wait(0.05)
        finally:
            channel.close()

    def _one(self, kv: rpc_pb2_grpc.KVStub, rng: random.Random, n: int) -> bool:
        key = rng.choice(self.keys)
        value = b"c%d-%d" % (self.number, n)
        kind = rng.random()
        if kind < 0.4:
            request, call = (
                Put(key, value),
                lambda: kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=CALL_TIMEOUT),
            )
            answer = lambda r: PutResponse(r.header.revision)  # noqa: E731
        elif kind < 0.8:
            request, call = Range(key), lambda: kv.Range(rpc_pb2.RangeRequest(key=key), timeout=CALL_TIMEOUT)
            answer = lambda r: RangeResponse(r.header.revision, tuple(_kv(x) for x in r.kvs))  # noqa: E731
        else:
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

        started = time.monotonic()
        try:
            response = call()
        except grpc.RpcError:
            if not isinstance(request, Range):
                self.history.append(Operation(self.number, started, None, request, None))
            return False
        self.history.append(Operation(self.number, started, time.monotonic(), request, answer(response)))
        return True


def run_clients(clients: list[RecordingClient], stop: threading.Event) -> list[threading.Thread]:
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    return threads


def merged_history(clients: list[RecordingClient]) -> list[Operation]:
    return sorted((op for c in clients for op in c.history), key=lambda op: op.call)

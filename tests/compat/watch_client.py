"""A grpcio Watch stream that records every response, for comparing etcd and etcdx."""

from __future__ import annotations

import queue
import threading
import time

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc


class RecordingWatch:
    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self._requests: queue.Queue = queue.Queue()
        self.responses: list[rpc_pb2.WatchResponse] = []
        self._lock = threading.Lock()
        self._call = rpc_pb2_grpc.WatchStub(self.channel).Watch(self._request_iter())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _request_iter(self):
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def _read(self) -> None:
        try:
            for response in self._call:
                with self._lock:
                    self.responses.append(response)
        except grpc.RpcError:
            pass

    def send(self, request: rpc_pb2.WatchRequest) -> None:
        self._requests.put(request)

    def create(self, create: rpc_pb2.WatchCreateRequest, timeout: float = 10.0) -> rpc_pb2.WatchResponse:
        """Sends a create request and waits for its created reply."""
        seen = self.count()
        self.send(rpc_pb2.WatchRequest(create_request=create))
        return self.wait_for(lambda r: r.created, seen, timeout)

    def count(self) -> int:
        with self._lock:
            return len(self.responses)

    def wait_for(self, predicate, after: int, timeout: float) -> rpc_pb2.WatchResponse:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for response in self.responses[after:]:
                    if predicate(response):
                        return response
            time.sleep(0.005)
        raise TimeoutError("no matching watch response")

    def wait_quiet(self, quiet: float = 0.7, limit: float = 15.0) -> None:
        """Returns once no response arrived for ``quiet`` seconds (bounded by ``limit``)."""
        deadline = time.monotonic() + limit
        last, since = self.count(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.count()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def close(self) -> None:
        self._call.cancel()
        self._requests.put(None)
        self._thread.join(timeout=5)
        self.channel.close()

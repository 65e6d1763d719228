"""--namespace: the proxy's clients see a key space that is the upstream's keys under a prefix (etcd's
clientv3/namespace, which etcd's grpc-proxy wraps its KV, Watch and Lease clients in).

Requests get the prefix on every key and range end; responses lose it from every key. A range end of "\\0"
(everything from the key on) becomes the end of the prefix's range, so a client never reaches keys outside
it. With an empty prefix every method is the identity. Lock and Election are not namespaced (etcd's
grpc-proxy forwards them on the raw connection).
"""

from __future__ import annotations

from etcdx import errors
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.mvccpb import kv_pb2


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with ``prefix`` (b"\\0": none, the end of the key space)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


class Namespace:
    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix

    def __bool__(self) -> bool:
        return bool(self.prefix)

    def range(self, key: bytes, range_end: bytes) -> tuple[bytes, bytes]:
        if not self.prefix:
            return key, range_end
        if range_end == b"\0":
            return self.prefix + key, prefix_end(self.prefix)
        return self.prefix + key, (self.prefix + range_end) if range_end else b""

    def strip_kv(self, kv: kv_pb2.KeyValue) -> None:
        if self.prefix and kv.key.startswith(self.prefix):
            kv.key = kv.key[len(self.prefix) :]

    # --- requests ---

    def _check(self, key: bytes) -> None:
        if self.prefix and not key:
            raise errors.ERR_EMPTY_KEY

    def range_request(self, request: rpc_pb2.RangeRequest) -> None:
        self._check(request.key)
        request.key, request.range_end = self.range(request.key, request.range_end)

    def put_request(self, request: rpc_pb2.PutRequest) -> None:
        self._check(request.key)
        request.key = self.prefix + request.key

    def delete_request(self, request: rpc_pb2.DeleteRangeRequest) -> None:
        self._check(request.key)
        request.key, request.range_end = self.range(request.key, request.range_end)

    def txn_request(self, request: rpc_pb2.TxnRequest) -> None:
        for compare in request.compare:
            self._check(compare.key)
            compare.key, compare.range_end = self.range(compare.key, compare.range_end)
        for op in (*request.success, *request.failure):
            kind = op.WhichOneof("request")
            if kind == "request_range":
                self.range_request(op.request_range)
            elif kind == "request_put":
                self.put_request(op.request_put)
            elif kind == "request_delete_range":
                self.delete_request(op.request_delete_range)
            elif kind == "request_txn":
                self.txn_request(op.request_txn)

    # --- responses ---

    def range_response(self, response: rpc_pb2.RangeResponse) -> None:
        for kv in response.kvs:
            self.strip_kv(kv)

    def put_response(self, response: rpc_pb2.PutResponse) -> None:
        if response.HasField("prev_kv"):
            self.strip_kv(response.prev_kv)

    def delete_response(self, response: rpc_pb2.DeleteRangeResponse) -> None:
        for kv in response.prev_kvs:
            self.strip_kv(kv)

    def txn_response(self, response: rpc_pb2.TxnResponse) -> None:
        for op in response.responses:
            kind = op.WhichOneof("response")
            if kind == "response_range":
                self.range_response(op.response_range)
            elif kind == "response_put":
                self.put_response(op.response_put)
            elif kind == "response_delete_range":
                self.delete_response(op.response_delete_range)
            elif kind == "response_txn":
                self.txn_response(op.response_txn)

    def lease_ttl_response(self, response: rpc_pb2.LeaseTimeToLiveResponse) -> None:
        keys = [key[len(self.prefix) :] if key.startswith(self.prefix) else key for key in response.keys]
        del response.keys[:]
        response.keys.extend(keys)

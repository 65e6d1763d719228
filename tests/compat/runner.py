"""Runs KV ops against an endpoint with grpcio and returns comparable outcomes.

Normalisation rule: only the top-level response header's cluster_id, member_id and raft_term are
dropped. They identify the server and its Raft term, which depend on member IDs and elections, not
on KV semantics. Everything else (revisions, kvs and their order, count, more, prev_kv(s),
succeeded, nested responses, error code and message) must be identical.
"""

from __future__ import annotations

import grpc
from google.protobuf.json_format import MessageToDict

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.compat.opgen import Op

_SERVER_IDENTITY = ("cluster_id", "member_id", "raft_term")


class KVClient:
    def __init__(self, endpoint: str) -> None:
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        self.channel = grpc.insecure_channel(endpoint, options=options)
        self.stub = rpc_pb2_grpc.KVStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def run(self, op: Op) -> dict:
        """The normalised outcome of one op: {"response": {...}} or {"error": [code, message]}."""
        try:
            response = getattr(self.stub, op.method)(op.request, timeout=30)
        except grpc.RpcError as exc:
            return {"error": [exc.code().name, exc.details()]}
        result = MessageToDict(response, preserving_proto_field_name=True)
        header = result.get("header", {})
        for field in _SERVER_IDENTITY:
            header.pop(field, None)
        return {"response": result}

    def revision(self) -> int:
        return self.stub.Range(rpc_pb2.RangeRequest(key=b"\x00"), timeout=30).header.revision

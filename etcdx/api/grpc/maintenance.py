"""etcdserverpb.Maintenance: Status, Alarm, Defragment, Snapshot, Hash, HashKV, MoveLeader and Downgrade
(etcdx/api/grpc/downgrade.py), as etcd 3.5 answers them."""

from __future__ import annotations

import hashlib
import time

import trio

from etcdx import errors
from etcdx.api.grpc.codec import decode
from etcdx.api.grpc.downgrade import downgrade
from etcdx.log import get_logger
from etcdx.mvcc import backend_image, kv_hash, snapshot_file
from etcdx.mvcc.alarms import alarm_name, check_alarm_request
from etcdx.net.grpc_server import RpcContext, Send, ServerStreamMethod, UnaryMethod
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server import corrupt_check, metrics
from etcdx.server.server import EtcdServer
from etcdx.version import SERVER_VERSION

log = get_logger("etcdx.api.maintenance")

# etcd's send buffer: each SnapshotResponse carries at most this many bytes of the image.
SNAPSHOT_CHUNK = 32 * 1024


class MaintenanceService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server

    def methods(self) -> dict[str, UnaryMethod | ServerStreamMethod]:
        return {
            "/etcdserverpb.Maintenance/Snapshot": ServerStreamMethod(self.snapshot),
            "/etcdserverpb.Maintenance/Hash": UnaryMethod(self.hash),
            "/etcdserverpb.Maintenance/HashKV": UnaryMethod(self.hash_kv),
            "/etcdserverpb.Maintenance/Status": UnaryMethod(self.status),
            "/etcdserverpb.Maintenance/Alarm": UnaryMethod(self.alarm),
            "/etcdserverpb.Maintenance/Defragment": UnaryMethod(self.defragment),
            "/etcdserverpb.Maintenance/MoveLeader": UnaryMethod(self.move_leader),
            "/etcdserverpb.Maintenance/Downgrade": UnaryMethod(self.downgrade),
        }

    async def status(self, data: bytes, ctx: RpcContext) -> bytes:
        """etcd's Status, field by field: raftIndex is the committed index, raftAppliedIndex the applied one;
        errors lists "etcdserver: no leader" while this member knows none, then each active alarm in
        protobuf text form (with its trailing space), as etcd 3.5 does."""
        decode(rpc_pb2.StatusRequest, data)
        server = self._server
        problems = [] if server.leader_id else [errors.ERR_NO_LEADER.message]
        problems += [f"memberID:{m} alarm:{alarm_name(a)} " for m, a in server.alarms.list()]
        return rpc_pb2.StatusResponse(
            header=server.header(),
            version=SERVER_VERSION,
            dbSize=server.db_size_bytes,
            dbSizeInUse=server.db_size_in_use_bytes,
            leader=server.leader_id,
            raftIndex=server.committed_index,
            raftTerm=server.raft_term,
            raftAppliedIndex=server.applied_index,
            errors=problems,
            isLearner=server.is_learner,
        ).SerializeToString()

    async def alarm(self, data: bytes, ctx: RpcContext) -> bytes:
        """Every action goes through the log, GET included, as etcd 3.5's Alarm does (so a GET takes a log
        index, and fails as a write does without a quorum): GET answers the applied alarms (filtered by member
        and type), ACTIVATE and DEACTIVATE what they changed. What etcd cannot answer (an unknown action,
        ACTIVATE of an unknown type) is refused here, before the log (check_alarm_request)."""
        request = decode(rpc_pb2.AlarmRequest, data)
        check_alarm_request(request)
        response = await self._server.propose(InternalRequest(alarm=request))
        return response.SerializeToString()

    async def defragment(self, data: bytes, ctx: RpcContext) -> bytes:
        """Shrinks the backend file to the space in use (EtcdServer.defragment); answers, as etcd 3.5 does, an
        empty response (no header)."""
        decode(rpc_pb2.DefragmentRequest, data)
        await self._server.defragment()
        return rpc_pb2.DefragmentResponse().SerializeToString()

    async def snapshot(self, data: bytes, ctx: RpcContext, send: Send) -> None:
        """etcd's Snapshot stream: the backend image of the applied state, padded as snapshot_file says, in
        SNAPSHOT_CHUNK blobs, each with the
        bytes still to come after it in ``remaining_bytes``, then one more message whose blob is the SHA-256 of
        the image (remaining_bytes 0): the trailer `etcdutl snapshot restore` checks. No header, as etcd."""
        decode(rpc_pb2.SnapshotRequest, data)
        started = time.perf_counter()
        async with self._server.committed_view() as view:
            image = snapshot_file.padded(await trio.to_thread.run_sync(backend_image.encode, view.scan))
        total = len(image)
        log.info("sending database snapshot to client", total_bytes=total)
        for start in range(0, total, SNAPSHOT_CHUNK):
            blob = image[start : start + SNAPSHOT_CHUNK]
            remaining = total - start - len(blob)
            await send(rpc_pb2.SnapshotResponse(remaining_bytes=remaining, blob=blob).SerializeToString())
        await send(rpc_pb2.SnapshotResponse(remaining_bytes=0, blob=hashlib.sha256(image).digest()).SerializeToString())
        log.info("sent database snapshot to client", total_bytes=total)
        metrics.BACKEND_SNAPSHOT_SECONDS.observe(time.perf_counter() - started)

    async def hash(self, data: bytes, ctx: RpcContext) -> bytes:
        """etcd's Hash: CRC-32C of the whole backend as committed (kv_hash.backend_hash), at the current revision."""
        decode(rpc_pb2.HashRequest, data)
        async with self._server.committed_view() as view:
            revision = self._server.store.current_revision
            started = time.perf_counter()
            value = await trio.to_thread.run_sync(kv_hash.backend_hash, view)
            metrics.HASH_SECONDS.observe(time.perf_counter() - started)
        response = rpc_pb2.HashResponse(hash=value)
        self._server.fill_header(response.header)
        response.header.revision = revision
        return response.SerializeToString()

    async def hash_kv(self, data: bytes, ctx: RpcContext) -> bytes:
        """etcd's HashKV (3.5): corrupt_check.hash_kv, the same hash members compare."""
        request = decode(rpc_pb2.HashKVRequest, data)
        return (await corrupt_check.hash_kv(self._server, request.revision)).SerializeToString()

    async def move_leader(self, data: bytes, ctx: RpcContext) -> bytes:
        """etcd's MoveLeader: only the leader takes it ("etcdserver: not leader" elsewhere); it answers once the
        target leads (EtcdServer.move_leader), waiting until the caller's deadline (etcd's context), or for the
        request timeout when the call has none (etcd would wait on). The response has no header, as etcd's."""
        request = decode(rpc_pb2.MoveLeaderRequest, data)
        server = self._server
        if not server.is_leader:
            raise errors.ERR_NOT_LEADER
        deadline = ctx.deadline if ctx.deadline is not None else trio.current_time() + server.request_timeout
        await server.move_leader(request.targetID, deadline)
        return rpc_pb2.MoveLeaderResponse().SerializeToString()

    async def downgrade(self, data: bytes, ctx: RpcContext) -> bytes:
        return (await downgrade(self._server, decode(rpc_pb2.DowngradeRequest, data))).SerializeToString()

"""--quota-backend-bytes: writes past the quota fail with etcd's error and raise the NOSPACE alarm."""

from __future__ import annotations

import http.client

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import etcdx_process


# The second case holds the batch transaction open past the whole fill: the file does not grow until a
# commit, so the quota must count what the open batch already holds.
@pytest.mark.parametrize("batch_interval", ["100ms", "60s"])
def test_space_exceeded_raises_an_alarm_until_disarmed(tmp_path, batch_interval):
    args = ("--quota-backend-bytes", "300000", "--backend-batch-interval", batch_interval)
    with etcdx_process(tmp_path, extra_args=args).start() as server:
        channel = grpc.insecure_channel(server.endpoint)
        kv, maintenance = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.MaintenanceStub(channel)
        with pytest.raises(grpc.RpcError) as full:
            for i in range(100):
                kv.Put(rpc_pb2.PutRequest(key=b"fill/%d" % i, value=b"x" * 20_000))
        assert (full.value.code(), full.value.details()) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "etcdserver: mvcc: database space exceeded",
        )
        alarms = maintenance.Alarm(rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)).alarms
        assert [(a.memberID, a.alarm) for a in alarms] == [
            (kv.Range(rpc_pb2.RangeRequest(key=b"x")).header.member_id, rpc_pb2.NOSPACE)
        ]
        with pytest.raises(grpc.RpcError):
            kv.Put(rpc_pb2.PutRequest(key=b"small", value=b"1"))  # every write that adds data now fails
        kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"fill/", range_end=b"fill0"))  # deletes still work
        channel.close()
        server.kill9()  # the alarm is applied state: it survives a crash, as etcd's does
        server.restart()
        channel = grpc.insecure_channel(server.endpoint)
        kv, maintenance = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.MaintenanceStub(channel)
        assert maintenance.Alarm(rpc_pb2.AlarmRequest()).alarms == alarms
        with pytest.raises(grpc.RpcError):
            kv.Put(rpc_pb2.PutRequest(key=b"small", value=b"1"))
        conn = http.client.HTTPConnection("127.0.0.1", server.client_port, timeout=10)
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert (response.status, response.read()) == (503, b'{"health":"false","reason":"ALARM NOSPACE"}\n')
        conn.close()
        maintenance.Alarm(
            rpc_pb2.AlarmRequest(
                action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=alarms[0].memberID, alarm=rpc_pb2.NOSPACE
            )
        )
        assert maintenance.Alarm(rpc_pb2.AlarmRequest()).alarms == []
        channel.close()

"""Watch creations on one grpcio channel, one at a time per stream, with the server's CPU per creation from /proc.

    python bench/watch_create_probe.py ENDPOINT STREAMS CREATIONS PID[,PID...]

Prints creations per second, the server CPU per creation (user + system time of the given processes: a member
and its read workers) and the tool's own CPU per creation. One channel is one connection: with read workers
beside the member, it lands on one process (SO_REUSEPORT); run with --experimental-read-workers 0 to measure
the member's own path."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def create_many(stub: rpc_pb2_grpc.WatchStub, stream: int, count: int) -> None:
    call = stub.Watch()
    for n in range(count):
        create = rpc_pb2.WatchCreateRequest(key=b"probe/%d/%d" % (stream, n))
        await call.write(rpc_pb2.WatchRequest(create_request=create))
        while not (await call.read()).created:
            pass
    call.cancel()


async def main(endpoint: str, streams: int, count: int, pids: list[int]) -> None:
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = rpc_pb2_grpc.WatchStub(channel)
        await create_many(stub, -1, 5)  # the connection and the first stream set up, outside the measure
        cpu_before, began, tool_before = cpu_seconds(pids), time.perf_counter(), time.process_time()
        await asyncio.gather(*(create_many(stub, stream, count) for stream in range(streams)))
        seconds, total = time.perf_counter() - began, streams * count
        server_us = 1e6 * (cpu_seconds(pids) - cpu_before) / total
        tool_us = 1e6 * (time.process_time() - tool_before) / total
        print(f"{total / seconds:.0f} creations/s, server {server_us:.0f} us/creation, tool {tool_us:.0f} us/creation")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(p) for p in sys.argv[4].split(",")]))

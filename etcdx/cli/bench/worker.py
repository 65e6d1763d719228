"""One load-generating process: grpc.aio clients over a few connections, latencies into a histogram.

Several of these run side by side (--processes) so that the tool is not the bottleneck; each
reports its own CPU time, which the report turns into the tool's CPU per request.
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from dataclasses import dataclass, field

import grpc

from etcdx.cli.bench.histogram import Histogram
from etcdx.cli.bench.scenarios import SCENARIOS
from etcdx.pb.etcdserverpb import rpc_pb2_grpc


@dataclass
class Stubs:
    kv: rpc_pb2_grpc.KVStub
    lease: rpc_pb2_grpc.LeaseStub
    watch: rpc_pb2_grpc.WatchStub


@dataclass
class WorkerResult:
    histogram: dict
    errors: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    cpu_seconds: float = 0.0
    elapsed: float = 0.0
    extra: dict = field(default_factory=dict)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def open_stubs(endpoints: list[str], conns: int) -> tuple[list[grpc.aio.Channel], list[Stubs]]:
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    channels = [grpc.aio.insecure_channel(endpoints[i % len(endpoints)], options=options) for i in range(conns)]
    stubs = [Stubs(rpc_pb2_grpc.KVStub(c), rpc_pb2_grpc.LeaseStub(c), rpc_pb2_grpc.WatchStub(c)) for c in channels]
    return channels, stubs


async def request_loop(options, index: int, clients: int, total: int | None, queue) -> WorkerResult:
    """``clients`` concurrent clients share ``total`` requests (or run for --duration seconds)."""
    channels, stubs = open_stubs(options.endpoints, options.conns)
    histogram = Histogram()
    errors: dict[str, int] = {}
    remaining = [total]
    deadline = time.monotonic() + options.duration if total is None else None
    rate = options.rate / options.processes if options.rate else 0.0
    start_cpu, start = cpu_seconds(), time.monotonic()
    done = [0]

    async def client(n: int) -> None:
        rng = random.Random(options.seed * 1_000_003 + index * 1009 + n)
        make = SCENARIOS[options.scenario](options, stubs[n % len(stubs)], rng, offset=index * 1_000_000 + n)
        while True:
            if remaining[0] is not None:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            elif time.monotonic() >= deadline:
                return
            if rate:
                due = start + done[0] / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            began = time.perf_counter_ns()
            try:
                await make()
            except grpc.aio.AioRpcError as exc:
                label = f"{exc.code().name}: {exc.details()}"
                errors[label] = errors.get(label, 0) + 1
            except Exception as exc:  # counted and reported, never fatal to the run
                label = f"{type(exc).__name__}: {exc}"
                errors[label] = errors.get(label, 0) + 1
            else:
                histogram.record(time.perf_counter_ns() - began)
            done[0] += 1
            if queue is not None and done[0] % 256 == 0:
                queue.put(256)

    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.monotonic() - start
    for channel in channels:
        await channel.close()
    return WorkerResult(histogram.to_dict(), errors, done[0], cpu_seconds() - start_cpu, elapsed)


def run(options, index: int, clients: int, total: int | None, queue) -> WorkerResult:
    return asyncio.run(request_loop(options, index, clients, total, queue))

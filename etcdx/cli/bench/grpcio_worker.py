"""One load-generating process with the grpcio client: grpc.aio coroutines over a few channels, latencies
into a histogram. Also the channels of the watch scenarios."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import grpc

from etcdx.cli.bench.histogram import Histogram
from etcdx.cli.bench.scenarios import SCENARIOS
from etcdx.cli.bench.tls import grpc_channel_args
from etcdx.cli.bench.worker import WorkerResult, cpu_seconds
from etcdx.pb.etcdserverpb import rpc_pb2_grpc

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


@dataclass
class Stubs:
    kv: rpc_pb2_grpc.KVStub
    lease: rpc_pb2_grpc.LeaseStub
    watch: rpc_pb2_grpc.WatchStub


def open_channel(endpoint, tls) -> grpc.aio.Channel:
    """A grpc.aio channel; one channel is one HTTP/2 connection (each gets its own subchannel)."""
    options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    if not endpoint.secure:
        return grpc.aio.insecure_channel(endpoint.address, options=options)
    credentials, extra = grpc_channel_args(endpoint, tls)
    return grpc.aio.secure_channel(endpoint.address, credentials, options=options + extra)


def open_stubs(options) -> tuple[list[grpc.aio.Channel], list[Stubs]]:
    endpoints = options.endpoints
    channels = [open_channel(endpoints[i % len(endpoints)], options.tls) for i in range(options.conns)]
    stubs = [Stubs(rpc_pb2_grpc.KVStub(c), rpc_pb2_grpc.LeaseStub(c), rpc_pb2_grpc.WatchStub(c)) for c in channels]
    return channels, stubs


async def request_loop(options, index: int, clients: int, total: int | None, queue) -> WorkerResult:
    """``clients`` concurrent clients share ``total`` requests (or run for --duration seconds)."""
    channels, stubs = open_stubs(options)
    histogram = Histogram()
    errors: dict[str, int] = {}
    outcomes: dict[str, int] = {}
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
                outcome = await make()
            except grpc.aio.AioRpcError as exc:
                label = f"{exc.code().name}: {exc.details()}"
                errors[label] = errors.get(label, 0) + 1
            except Exception as exc:  # counted and reported, never fatal to the run
                label = f"{type(exc).__name__}: {exc}"
                errors[label] = errors.get(label, 0) + 1
            else:
                histogram.record(time.perf_counter_ns() - began)
                if outcome is not None:
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
            done[0] += 1
            if queue is not None and done[0] % 256 == 0:
                queue.put(256)

    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.monotonic() - start
    for channel in channels:
        await channel.close()
    cpu = cpu_seconds() - start_cpu
    return WorkerResult(histogram.to_dict(), errors, done[0], cpu, elapsed, outcomes=outcomes)


def run(options, index: int, clients: int, total: int | None, queue) -> WorkerResult:
    return asyncio.run(request_loop(options, index, clients, total, queue))

"""Watch scenarios of `etcdx bench`, run in one process so that put and event times share a clock.

watch:          --watchers spread over --streams watch random keys of the key space; --put-total puts
                at --put-rate go to those keys. Latency = watch creation; the report counts events.
watch-latency:  --watchers on --streams watch --watch-keys keys (watcher i: key i mod --watch-keys; 1: all
                watch one key); put n of --put-total at --put-rate goes to key n mod --watch-keys. Each event
                is timed from its Put being sent to its arrival (one sample per watcher of the key).
watch-create:   --watchers over --streams created, no puts: latency = one creation (request to its
                `created` answer); the rate is watchers per second of the creation phase.

The streams create their watchers at once, each stream one watcher after another (a create waits for its
`created` answer); puts are sent at their due times without waiting for the previous one. CPU (the tool's,
and with --server-pid the server's) is counted over what the latencies time: watch-latency's puts and
events (not the creation of its watchers), watch-create's creations, watch's whole run.
"""

from __future__ import annotations

import asyncio
import random
import time

from etcdx.cli.bench.grpcio_worker import open_stubs
from etcdx.cli.bench.histogram import Histogram
from etcdx.cli.bench.proc_cpu import server_cpu_seconds
from etcdx.cli.bench.worker import WorkerResult, cpu_seconds
from etcdx.pb.etcdserverpb import rpc_pb2

PUTS_IN_FLIGHT = 256  # puts sent but unanswered at most: beyond it the put rate gives way
EVENTS_GRACE = 10.0  # seconds to wait for the last events once every put is answered


def latency_key(n: int) -> bytes:
    return b"watch-latency/%06d" % n


async def _create(call, key: bytes, histogram: Histogram | None) -> None:
    began = time.perf_counter_ns()
    await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key)))
    while True:
        response = await call.read()
        if response.created:
            break
    if histogram is not None:
        histogram.record(time.perf_counter_ns() - began)


async def _create_all(calls: list, watched: list[bytes], histogram: Histogram | None) -> None:
    """Watcher i on stream i mod len(calls); the streams in parallel, each one create at a time."""

    async def on_stream(s: int) -> None:
        for key in watched[s :: len(calls)]:
            await _create(calls[s], key, histogram)

    await asyncio.gather(*(on_stream(s) for s in range(len(calls))))


def _watched_keys(options, rng: random.Random) -> list[bytes]:
    if options.scenario == "watch-latency":
        return [latency_key(i % max(1, options.watch_keys)) for i in range(options.watchers)]
    if options.scenario == "watch-create":
        return [b"watch-create/%06d" % i for i in range(options.watchers)]
    space, size = options.key_space_size, options.key_size
    return [str(rng.randrange(space)).encode().rjust(size, b"0") for _ in range(options.watchers)]


def _server_cpu(options) -> float | None:
    return server_cpu_seconds(options.server_pid) if options.server_pid else None


def _since(before: float | None, options) -> float | None:
    return None if before is None else server_cpu_seconds(options.server_pid) - before


async def watch_run(options) -> WorkerResult:
    """The run; ``extra["server_cpu_seconds"]``: the server's CPU over the measured part (None: no --server-pid)."""
    channels, stubs = open_stubs(options)
    rng = random.Random(options.seed)
    start_cpu, start, start_server = cpu_seconds(), time.monotonic(), _server_cpu(options)
    latency_mode = options.scenario == "watch-latency"
    histogram = Histogram()
    calls = [stubs[i % len(stubs)].watch.Watch() for i in range(options.streams)]
    watched = _watched_keys(options, rng)
    await _create_all(calls, watched, None if latency_mode else histogram)
    created = time.monotonic()
    extra = {"watchers": options.watchers, "streams": options.streams}
    if options.scenario == "watch-create":
        extra |= {"creation_seconds": created - start, "watchers_per_second": options.watchers / (created - start)}
        extra["server_cpu_seconds"], tool_cpu = _since(start_server, options), cpu_seconds() - start_cpu
        await _close(calls, channels)
        return WorkerResult(histogram.to_dict(), {}, histogram.total, tool_cpu, created - start, extra)

    sent_at: dict[int, int] = {}
    arrivals: list[tuple[int, int]] = []  # (revision, arrival time); matched to sends at the end
    received = [0]
    expected = [0]
    watchers_per_key: dict[bytes, int] = {}
    for key in watched:
        watchers_per_key[key] = watchers_per_key.get(key, 0) + 1

    async def reader(call) -> None:
        while True:
            response = await call.read()
            now = time.perf_counter_ns()
            for event in response.events:
                received[0] += 1
                if latency_mode:
                    arrivals.append((event.kv.mod_revision, now))

    readers = [asyncio.ensure_future(reader(call)) for call in calls]
    kv = stubs[0].kv
    value = b"v" * options.val_size
    in_flight = asyncio.Semaphore(PUTS_IN_FLIGHT)

    async def put(key: bytes) -> None:
        try:
            began = time.perf_counter_ns()
            response = await kv.Put(rpc_pb2.PutRequest(key=key, value=value))
            sent_at[response.header.revision] = began
        finally:
            in_flight.release()

    interval = 1 / options.put_rate if options.put_rate else 0.0
    if latency_mode:
        start_cpu, start_server = cpu_seconds(), _server_cpu(options)
    put_start = time.monotonic()
    puts = []
    for n in range(options.put_total):
        key = latency_key(n % max(1, options.watch_keys)) if latency_mode else rng.choice(watched)
        expected[0] += watchers_per_key.get(key, 0)
        await in_flight.acquire()
        puts.append(asyncio.ensure_future(put(key)))
        if interval:
            delay = put_start + (n + 1) * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    await asyncio.gather(*puts)
    deadline = time.monotonic() + EVENTS_GRACE
    while received[0] < expected[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    tool_cpu, server_cpu = cpu_seconds() - start_cpu, _since(start_server, options)
    for task in readers:
        task.cancel()
    for revision, arrived in arrivals:
        if revision in sent_at:
            histogram.record(arrived - sent_at[revision])
    await _close(calls, channels)
    extra |= {
        "puts": options.put_total,
        "put_seconds": time.monotonic() - put_start,
        "events_expected": expected[0],
        "events_received": received[0],
        "server_cpu_seconds": server_cpu,
    }
    return WorkerResult(histogram.to_dict(), {}, histogram.total, tool_cpu, time.monotonic() - start, extra)


async def _close(calls: list, channels: list) -> None:
    for call in calls:
        call.cancel()
    for channel in channels:
        await channel.close()


def run(options) -> WorkerResult:
    return asyncio.run(watch_run(options))

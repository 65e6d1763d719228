"""Watch scenarios of `etcdx bench`, run in one process so that put and event times share a clock.

watch:          --watchers spread over --streams watch random keys of the key space; --put-total puts
                at --put-rate go to those keys. Latency = watch creation; the report counts events.
watch-latency:  --watchers on --streams all watch one key; each of --put-total puts at --put-rate
                is timed from the Put being sent to each watcher's event (one sample per watcher).
"""

from __future__ import annotations

import asyncio
import random
import time

from etcdx.cli.bench.grpcio_worker import open_stubs
from etcdx.cli.bench.histogram import Histogram
from etcdx.cli.bench.worker import WorkerResult, cpu_seconds
from etcdx.pb.etcdserverpb import rpc_pb2


async def _create(call, key: bytes, histogram: Histogram | None) -> None:
    began = time.perf_counter_ns()
    await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key)))
    while True:
        response = await call.read()
        if response.created:
            break
    if histogram is not None:
        histogram.record(time.perf_counter_ns() - began)


async def watch_run(options) -> WorkerResult:
    channels, stubs = open_stubs(options)
    rng = random.Random(options.seed)
    start_cpu, start = cpu_seconds(), time.monotonic()
    latency_mode = options.scenario == "watch-latency"
    histogram = Histogram()
    calls = [stubs[i % len(stubs)].watch.Watch() for i in range(options.streams)]

    def random_key() -> bytes:
        return str(rng.randrange(options.key_space_size)).encode().rjust(options.key_size, b"0")

    keys = [b"watch-latency"] if latency_mode else [random_key() for _ in range(options.watchers)]
    watched: list[bytes] = []
    for i in range(options.watchers):
        key = keys[0] if latency_mode else keys[i]
        await _create(calls[i % len(calls)], key, None if latency_mode else histogram)
        watched.append(key)
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
    interval = 1 / options.put_rate if options.put_rate else 0.0
    put_start = time.monotonic()
    for n in range(options.put_total):
        key = keys[0] if latency_mode else rng.choice(watched)
        began = time.perf_counter_ns()
        response = await kv.Put(rpc_pb2.PutRequest(key=key, value=b"v" * options.val_size))
        sent_at[response.header.revision] = began
        expected[0] += watchers_per_key.get(key, 0)
        if interval:
            delay = put_start + (n + 1) * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    deadline = time.monotonic() + 10
    while received[0] < expected[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for task in readers:
        task.cancel()
    for revision, arrived in arrivals:
        if revision in sent_at:
            histogram.record(arrived - sent_at[revision])
    for call in calls:
        call.cancel()
    for channel in channels:
        await channel.close()
    extra = {
        "watchers": options.watchers,
        "streams": options.streams,
        "puts": options.put_total,
        "events_expected": expected[0],
        "events_received": received[0],
    }
    return WorkerResult(
        histogram.to_dict(), {}, histogram.total, cpu_seconds() - start_cpu, time.monotonic() - start, extra
    )


def run(options) -> WorkerResult:
    return asyncio.run(watch_run(options))

"""One load-generating process with the native client: callback-driven clients over HTTP/2 channels.

A client is a small object, not a coroutine: when its response completes (inside the connection's
data_received) it records the latency and at once sends its next request, which leaves in the same
write as every other request made during that read.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time

from etcdx.cli.bench.grpc_wire import INTERNAL, label, single_message
from etcdx.cli.bench.h2channel import Channel, Stream
from etcdx.cli.bench.histogram import Histogram
from etcdx.cli.bench.native_requests import LEASE_GRANT, LEASE_KEEPALIVE, SCENARIOS, NextRequest
from etcdx.cli.bench.tls import ssl_context
from etcdx.cli.bench.worker import WorkerResult, cpu_seconds
from etcdx.pb.etcdserverpb import rpc_pb2

PROGRESS_EVERY = 256  # requests between progress reports (a power of two)
LEASE_TTL = 100
NOT_ONE_MESSAGE = label(INTERNAL, "the response is not one whole message")


class Run:
    """What the clients of one process share: the request budget, the pace, the results."""

    def __init__(self, options, clients: int, total: int | None, queue) -> None:
        self.loop = asyncio.get_running_loop()
        self.remaining = total  # None: run until the deadline
        self.deadline = time.monotonic() + options.duration
        self.interval_ns = round(1e9 * options.processes / options.rate) if options.rate else 0
        self.histogram = Histogram()
        self.errors: dict[str, int] = {}
        self.outcomes: dict[str, int] = {}  # labels the scenario gave its answers (e.g. a failed compare)
        self.queue = queue
        self.issued = 0
        self.done = 0
        self.active = clients
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.start_ns = time.perf_counter_ns()

    def take(self) -> bool:
        """Whether a client may start one more request (and counts it)."""
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
        elif time.monotonic() >= self.deadline:
            return False
        self.issued += 1
        return True

    def delay(self) -> float:
        """Seconds until the request just taken is due under --rate (0 without a rate)."""
        if not self.interval_ns:
            return 0.0
        return max(0.0, (self.start_ns + (self.issued - 1) * self.interval_ns - time.perf_counter_ns()) / 1e9)

    def complete(self, began: int, error: str | None) -> None:
        if error is None:
            self.histogram.record(time.perf_counter_ns() - began)
        else:
            self.errors[error] = self.errors.get(error, 0) + 1
        self.done += 1
        if self.queue is not None and not self.done % PROGRESS_EVERY:
            self.queue.put(PROGRESS_EVERY)

    def outcome(self, label: str) -> None:
        self.outcomes[label] = self.outcomes.get(label, 0) + 1

    def client_finished(self) -> None:
        self.active -= 1
        if not self.active and not self.finished.done():
            self.finished.set_result(None)


class UnaryClient:
    """One request at a time: the next is sent as soon as the previous completes."""

    __slots__ = ("run", "channel", "next_request", "began", "on_done")

    def __init__(self, run: Run, channel: Channel, next_request: NextRequest) -> None:
        self.run = run
        self.channel = channel
        self.next_request = next_request
        self.began = 0
        self.on_done = self.done  # one bound method for every call

    def start(self) -> None:
        run = self.run
        if not run.take():
            run.client_finished()
            return
        delay = run.delay() if run.interval_ns else 0.0
        if delay:
            run.loop.call_later(delay, self.send)
        else:
            self.send()

    def send(self) -> None:
        path, message = self.next_request()
        self.began = time.perf_counter_ns()
        connection = self.channel.connection
        if connection is not None:
            connection.unary(path, message, self.on_done)
        else:
            self.channel.unary(path, message, self.on_done)

    def done(self, error: str | None, body: bytes) -> None:
        # a success carries exactly one whole message: 5-byte prefix + its declared length
        if error is None and (len(body) < 5 or int.from_bytes(body[1:5], "big") != len(body) - 5):
            error = NOT_ONE_MESSAGE
        observe = getattr(self.next_request, "observe", None)  # scenarios that read their answers
        if error is None and observe is not None:
            label = observe(body[5:])
            if label is not None:
                self.run.outcome(label)
        self.run.complete(self.began, error)
        self.start()

    def stop(self) -> None:
        pass


class KeepAliveClient:
    """A lease and a LeaseKeepAlive stream; one request = one keep-alive and its answer. The first
    request also grants the lease and opens the stream (as the grpcio client's first request does)."""

    __slots__ = ("run", "channel", "stream", "keepalive", "began", "in_flight")

    GRANT = rpc_pb2.LeaseGrantRequest(TTL=LEASE_TTL).SerializeToString()

    def __init__(self, run: Run, channel: Channel) -> None:
        self.run = run
        self.channel = channel
        self.stream: Stream | None = None
        self.keepalive = b""
        self.began = 0
        self.in_flight = False

    def start(self) -> None:
        run = self.run
        if not run.take():
            run.client_finished()
            return
        delay = run.delay()
        if delay:
            run.loop.call_later(delay, self.send)
        else:
            self.send()

    def send(self) -> None:
        self.began = time.perf_counter_ns()
        self.in_flight = True
        if self.stream is None:
            self.channel.unary(LEASE_GRANT, self.GRANT, self.granted)
        else:
            self.channel.send(self.stream, self.keepalive)

    def granted(self, error: str | None, body: bytes) -> None:
        if error is None:
            message = single_message(body)
            if message is None:
                error = NOT_ONE_MESSAGE
            else:
                lease_id = rpc_pb2.LeaseGrantResponse.FromString(message).ID
                self.keepalive = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id).SerializeToString()
                self.stream = self.channel.open_stream(LEASE_KEEPALIVE, self.answered, self.closed)
                self.channel.send(self.stream, self.keepalive)
                return
        self.finish(error)

    def answered(self, message: bytes) -> None:
        if not self.in_flight:
            return
        ttl = rpc_pb2.LeaseKeepAliveResponse.FromString(message).TTL
        self.finish(None if ttl > 0 else "RuntimeError: lease expired")

    def closed(self, error: str | None, body: bytes) -> None:
        self.stream = None
        if self.in_flight:
            self.finish(error or label(INTERNAL, "the keep-alive stream ended"))

    def finish(self, error: str | None) -> None:
        self.in_flight = False
        self.run.complete(self.began, error)
        self.start()

    def stop(self) -> None:
        if self.stream is not None:
            self.channel.cancel(self.stream)
            self.stream = None


async def request_loop(options, index: int, clients: int, total: int | None, queue) -> WorkerResult:
    """``clients`` clients share ``total`` requests (or run for --duration seconds) over --conns channels."""
    endpoints = options.endpoints
    secure = any(endpoint.secure for endpoint in endpoints)
    context = ssl_context(options.tls) if secure else None
    start_cpu, start = cpu_seconds(), time.monotonic()
    channels = [Channel(endpoints[i % len(endpoints)], context) for i in range(options.conns)]
    await asyncio.gather(*(channel.open() for channel in channels))
    run = Run(options, clients, total, queue)
    workers = []
    for n in range(clients):
        channel = channels[n % len(channels)]
        if options.scenario == "lease-keepalive":
            workers.append(KeepAliveClient(run, channel))
        else:
            rng = random.Random(options.seed * 1_000_003 + index * 1009 + n)
            make = SCENARIOS[options.scenario](options, rng, offset=index * 1_000_000 + n)
            workers.append(UnaryClient(run, channel, make))
    gc.freeze()  # what exists now lives for the whole run: keep the collector from walking it
    for client in workers:
        client.start()
    if not workers:
        run.finished.set_result(None)
    await run.finished
    elapsed = time.monotonic() - start
    for client in workers:
        client.stop()
    for channel in channels:
        channel.close()
    await asyncio.sleep(0)
    cpu = cpu_seconds() - start_cpu
    return WorkerResult(run.histogram.to_dict(), run.errors, run.done, cpu, elapsed, outcomes=run.outcomes)


def run(options, index: int, clients: int, total: int | None, queue) -> WorkerResult:
    return asyncio.run(request_loop(options, index, clients, total, queue))

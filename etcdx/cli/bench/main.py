"""`etcdx bench`: a load generator for any etcd v3 endpoint (etcdx or etcd), after etcd's benchmark tool.

    etcdx bench put --endpoints 127.0.0.1:2379 --clients 64 --conns 8 --total 100000
    etcdx bench range --range-key foo --consistency s --duration 10
    etcdx bench txn-mixed --rw-ratio 4
    etcdx bench watch --watchers 1000 --streams 10 --put-total 1000 --put-rate 200
    etcdx bench watch-latency --watchers 100 --put-total 500 --put-rate 100
    etcdx bench watch-latency --watchers 10000 --streams 100 --watch-keys 10000 --put-total 3000 --put-rate 1000
    etcdx bench watch-create --watchers 1000 --streams 10
    etcdx bench txn-cas --clients 16 --duration 10
    etcdx bench lease-keepalive --clients 16 --total 20000
    etcdx bench compare --start etcdx --start etcd --repeat 3 --duration 2 --out report/
    etcdx bench recovery --start etcdx --start etcd --keys 100000 --repeat 3

--client native (the default) drives the request scenarios with the lean HTTP/2 client of this package;
--client grpcio with grpc.aio (the watch scenarios always use grpcio). --processes spreads the clients
over several processes so the tool is not the bottleneck; the report gives the tool's own CPU per request
next to throughput and latency percentiles. TLS: https:// endpoints, or any of --cacert, --cert, --key,
--insecure-skip-tls-verify (as etcd's benchmark tool).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import queue as queue_module
import sys

from etcdx.cli.bench import worker
from etcdx.cli.bench.extras import MissingExtra, require
from etcdx.cli.bench.histogram import Histogram
from etcdx.cli.bench.proc_cpu import server_cpu_seconds
from etcdx.cli.bench.report import render, summary, to_json
from etcdx.cli.bench.scenarios import SCENARIOS
from etcdx.cli.bench.tls import TlsOptions, parse_endpoints

WATCH_SCENARIOS = ("watch", "watch-latency", "watch-create")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="etcdx bench", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, *WATCH_SCENARIOS])
    parser.add_argument("--endpoints", default="127.0.0.1:2379", help="comma-separated [http(s)://]host:port list")
    parser.add_argument("--client", choices=["native", "grpcio"], default="native", help="gRPC client implementation")
    parser.add_argument("--cacert", default="", help="verify TLS servers with this CA bundle")
    parser.add_argument("--cert", default="", help="TLS client certificate")
    parser.add_argument("--key", default="", help="TLS client key")
    parser.add_argument("--insecure-skip-tls-verify", action="store_true", help="do not verify the server")
    parser.add_argument("--conns", type=int, default=1, help="gRPC connections per process")
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients in all")
    parser.add_argument("--processes", type=int, default=1, help="load-generating processes")
    parser.add_argument("--total", type=int, default=10000, help="requests in all (unless --duration)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to run instead of --total")
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s in all; 0 = as fast as possible")
    parser.add_argument("--key-size", type=int, default=8)
    parser.add_argument("--val-size", type=int, default=8)
    parser.add_argument("--key-space-size", type=int, default=1)
    parser.add_argument("--sequential-keys", action="store_true")
    parser.add_argument("--range-key", default="foo", help="range: the key")
    parser.add_argument("--range-end", default="", help="range: the range end")
    parser.add_argument("--prefix", action="store_true", help="range: the prefix of --range-key")
    parser.add_argument("--limit", type=int, default=0, help="range: limit")
    parser.add_argument("--consistency", choices=["l", "s"], default="l", help="linearizable or serializable")
    parser.add_argument("--txn-ops", type=int, default=1, help="txn-put: puts per txn")
    parser.add_argument("--rw-ratio", type=float, default=1.0, help="txn-mixed: reads per write")
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--watch-keys", type=int, default=1, help="watch-latency: keys the watchers spread over")
    parser.add_argument("--put-total", type=int, default=1000)
    parser.add_argument("--put-rate", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--server-pid", type=int, default=0, help="a local server: its CPU (and its children's) per request too"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    options = parser.parse_args(argv)
    options.tls = TlsOptions(options.cacert, options.cert, options.key, options.insecure_skip_tls_verify)
    try:
        options.endpoints = parse_endpoints(options.endpoints, options.tls)
    except ValueError as exc:
        parser.error(str(exc))
    return options


def _progress(queue, total: int | None, jobs: list, stream) -> None:
    """A progress line on a terminal while the workers run (they report every 256 requests)."""
    done = 0
    while not all(job.ready() for job in jobs):
        with contextlib.suppress(queue_module.Empty):
            done += queue.get(timeout=0.2)
        shown = f"{done}/{total}" if total else f"{done}"
        stream.write(f"\r{shown} requests")
        stream.flush()
    stream.write("\n")


def run_requests(options) -> dict:
    total = None if options.duration else options.total
    processes = max(1, min(options.processes, options.clients))
    options.processes = processes
    context = multiprocessing.get_context("spawn")
    server_before = server_cpu_seconds(options.server_pid) if options.server_pid else None
    with context.Manager() as manager, context.Pool(processes) as pool:
        queue = manager.Queue() if sys.stderr.isatty() else None
        jobs = []
        for index in range(processes):
            clients = options.clients // processes + (index < options.clients % processes)
            share = None if total is None else total // processes + (index < total % processes)
            jobs.append(pool.apply_async(worker.run, (options, index, clients, share, queue)))
        if queue is not None:
            _progress(queue, total, jobs, sys.stderr)
        results = [job.get() for job in jobs]
    server_cpu = server_cpu_seconds(options.server_pid) - server_before if options.server_pid else None
    histogram, errors, outcomes = Histogram(), {}, {}
    for result in results:
        histogram.merge(Histogram.from_dict(result.histogram))
        for label, n in result.errors.items():
            errors[label] = errors.get(label, 0) + n
        for label, n in result.outcomes.items():
            outcomes[label] = outcomes.get(label, 0) + n
    requests = sum(r.requests for r in results)
    elapsed = max(r.elapsed for r in results)
    tool_cpu = sum(r.cpu_seconds for r in results)
    return summary(
        options.scenario,
        histogram,
        requests,
        errors,
        elapsed,
        tool_cpu,
        {
            "clients": options.clients,
            "conns": options.conns,
            "processes": processes,
            "client": options.client,
            "outcomes": outcomes,
        },
        server_cpu,
    )


def run_watch(options) -> dict:
    from etcdx.cli.bench import watch_scenarios  # grpcio: the watch scenarios always use it

    result = watch_scenarios.run(options)
    extra = dict(result.extra)
    server_cpu = extra.pop("server_cpu_seconds")  # over the part the scenario measures
    histogram = Histogram.from_dict(result.histogram)
    return summary(
        options.scenario,
        histogram,
        result.requests,
        result.errors,
        result.elapsed,
        result.cpu_seconds,
        extra,
        server_cpu,
    )


def main(argv: list[str]) -> int:
    try:
        return _run(argv)
    except MissingExtra as exc:
        sys.stderr.write(f"{exc}\n")
        return 2


def _run(argv: list[str]) -> int:
    if argv[:1] == ["compare"]:
        require("bench compare", "grpc", "matplotlib")
        from etcdx.cli.bench.compare import main as compare_main

        return compare_main(argv[1:])
    if argv[:1] == ["recovery"]:
        require("bench recovery", "grpc")
        from etcdx.cli.bench.recovery import main as recovery_main

        return recovery_main(argv[1:])
    options = parse(argv)
    if options.scenario in WATCH_SCENARIOS:
        require(f"the {options.scenario} scenario", "grpc")
    elif options.client == "grpcio":
        require("--client grpcio", "grpc")
    result = run_watch(options) if options.scenario in WATCH_SCENARIOS else run_requests(options)
    sys.stdout.write(to_json(result) + "\n" if options.json else render(result))
    return 0

"""Range throughput of one member with 0, 1 and 2 read workers (--experimental-read-workers), on this machine.

    python bench/read_workers_scaling.py [--workers 0,1,2] [--rounds 3] [--duration 8] [--load-cpu 1] [--page]

For each round and each worker count (alternated: 0, 1, 2, 0, 1, 2, ...), starts a fresh member on free
loopback ports, puts --keys keys, then runs `etcdx bench range` (the native client, 64 clients over 16
connections, one key per request) for --duration seconds, serializable then linearizable. The load tool is
pinned with `taskset -c --load-cpu` to one core, so it cannot take more than that core whatever the server
does; the server's processes (the member and its workers) are not pinned. Reported per case: req/s and server
CPU per request (user + system seconds of the member and every worker PID from /proc, summed over the run,
divided by the requests), the load tool's CPU per request and its share of its core, and the busy share of a core
of the member and of its workers (CPU seconds over the timed run), medians over the rounds. Not a test:
nothing is asserted.

Capacity per core (the figure issue 12's scaling check needs on a machine with no free core): the requests each
worker answered itself are read from the member's served.counts file (worker/served_counts.py) over the run.
From the 0-worker case, c0 is the member's CPU per request serving alone. In a worker case, a worker-answered read
costs the worker's CPU per answered read plus the member's share for it: the member's CPU beyond c0 for the
requests it answered itself (the barriers, the relays), spread over the workers' reads. "added/core" is c0 over
that cost: the throughput one worker adds on a free core, as a fraction of one process's, if the member has room
for its share. It is derived from /proc CPU accounting, not measured at saturation: on 2 cores the load tool, the
member and a worker cannot each have a core.

--page: instead of one key, each request is a Kubernetes list page: the first 500 keys (--page-limit) of a
prefix holding --keys keys (default then 10,000), as `etcdx bench compare`'s range-page scenarios; a page costs
the server several times what it costs the load tool, so the pinned tool leaves the server room to scale.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from etcdx.cli.bench.proc_cpu import child_pids, process_cpu_seconds  # noqa: E402
from etcdx.errors import StatusCode  # noqa: E402
from etcdx.worker.served_counts import COUNTS_NAME, SLOTS, code_slot  # noqa: E402
from etcdx.worker.shared_words import SharedWords  # noqa: E402


@dataclass(frozen=True)
class Sample:
    """One case's figures: req/s, CPU per request (server, load tool) and busy core shares over the run."""

    rate: float
    server_us: float
    tool_us: float
    tool_share: float
    member_share: float
    workers_share: float
    requests: int = 0
    member_cpu: float = 0.0  # seconds over the run
    workers_cpu: float = 0.0
    worker_answered: int = 0  # Ranges the workers answered themselves (served.counts)


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def worker_answered(data_dir: str, workers: int) -> int:
    """The Ranges ``workers`` workers answered OK so far, from the member's served.counts (0 without workers)."""
    if not workers:
        return 0
    shared = SharedWords.open(os.path.join(data_dir, "member", COUNTS_NAME), SLOTS * workers, writable=False)
    try:
        return sum(shared.words[SLOTS * worker + code_slot(StatusCode.OK)] for worker in range(workers))
    finally:
        shared.close()


def start_member(workdir: str, workers: int, tree: str = ROOT) -> tuple[subprocess.Popen, str]:
    """A member of the source tree ``tree`` (this one by default) with ``workers`` read workers, serving."""
    client, peer = free_ports(2)
    url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    argv = [sys.executable, "-m", "etcdx", "--data-dir", os.path.join(workdir, f"m{client}"),
            "--listen-client-urls", url, "--advertise-client-urls", url, "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url, "--initial-cluster", f"default={peer_url}",
            "--experimental-read-workers", str(workers)]  # fmt: skip
    log = open(os.path.join(workdir, f"m{client}.log"), "wb")  # noqa: SIM115 - the child's
    env = {**os.environ, "PYTHONPATH": tree}
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tree, env=env)
    endpoint = f"127.0.0.1:{client}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(child_pids(proc.pid)) >= workers and _answers(endpoint):
            time.sleep(1.5)  # the workers build their index and get their first barrier
            return proc, endpoint
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("member did not start")


@contextlib.contextmanager
def running_member(workdir: str, workers: int, tree: str = ROOT) -> Iterator[tuple[subprocess.Popen, str]]:
    """start_member's member and endpoint, terminated (by its PID) on the way out."""
    proc, endpoint = start_member(workdir, workers, tree)
    try:
        yield proc, endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _answers(endpoint: str) -> bool:
    try:
        with socket.create_connection(tuple(endpoint.rsplit(":", 1)), timeout=1):
            return True
    except OSError:
        return False


def bench(endpoint: str, args: argparse.Namespace, *extra: str) -> dict:
    command = ["taskset", "-c", str(args.load_cpu), sys.executable, "-m", "etcdx", "bench", "--endpoints", endpoint,
               "--clients", "64", "--conns", "16", "--json", *extra]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def server_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += process_cpu_seconds(pid)
    return total


def run_case(workdir: str, workers: int, args: argparse.Namespace) -> dict[str, Sample]:
    with running_member(workdir, workers) as (proc, endpoint):
        # One client writes keys 0..keys-1 in order (a page needs every key there; 64 clients each start at
        # their own offset); single-key ranges keep the 64-client load.
        loaders = ["--clients", "1", "--conns", "1"] if args.page else []
        bench(endpoint, args, "put", "--total", str(args.keys), "--key-space-size", str(args.keys),
              "--sequential-keys", "--key-size", "8", "--val-size", "256", *loaders)  # fmt: skip
        # The keys are 8 zero-padded digits: a page is a prefix of them all ("0"), limited.
        target = ["--range-key", "0", "--prefix", "--limit", str(args.page_limit)] if args.page else [
            "--range-key", f"{args.keys // 2:08d}"]  # fmt: skip
        results = {}
        data_dir = proc.args[proc.args.index("--data-dir") + 1]
        for consistency in ("s", "l"):
            workers_pids = child_pids(proc.pid)
            member_before, workers_before = server_cpu([proc.pid]), server_cpu(workers_pids)
            answered_before = worker_answered(data_dir, workers)
            report = bench(endpoint, args, "range", "--consistency", consistency, "--duration", str(args.duration),
                           *target)  # fmt: skip
            timed = report["seconds"]  # the timed run; the server is idle while the tool starts and connects
            member_used = server_cpu([proc.pid]) - member_before
            workers_used = server_cpu(workers_pids) - workers_before
            requests, rate = max(report["requests"], 1), report["requests_per_second"]
            results[consistency] = Sample(
                rate=rate,
                server_us=(member_used + workers_used) / requests * 1e6,
                tool_us=report["tool_cpu_us_per_request"],
                tool_share=report["tool_cpu_seconds"] / timed,
                member_share=member_used / timed,
                workers_share=workers_used / timed,
                requests=requests,
                member_cpu=member_used,
                workers_cpu=workers_used,
                worker_answered=worker_answered(data_dir, workers) - answered_before,
            )
        return results


def added_per_core(runs: list[Sample], c0: float | None) -> str:
    """The module doc's "added/core": the median over ``runs`` of c0 over a worker-answered read's full cost."""
    if c0 is None or not all(s.worker_answered for s in runs):
        return "-"
    ratios = []
    for s in runs:
        own = s.requests - s.worker_answered  # the requests the member answered itself
        member_share = max(0.0, s.member_cpu - own * c0) / s.worker_answered
        ratios.append(c0 / (s.workers_cpu / s.worker_answered + member_share))
    return f"{statistics.median(ratios):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--keys", type=int, default=None, help="keys loaded (default 1,000; 10,000 with --page)")
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument("--page", action="store_true", help="each request a page of --page-limit keys")
    parser.add_argument("--page-limit", type=int, default=500)
    args = parser.parse_args()
    if args.keys is None:
        args.keys = 10_000 if args.page else 1000
    counts = [int(n) for n in args.workers.split(",")]
    samples: dict[tuple[int, str], list[Sample]] = {}
    with tempfile.TemporaryDirectory(prefix="etcdx-rw-bench-") as workdir:
        for round_ in range(args.rounds):
            for workers in counts:
                for consistency, sample in run_case(workdir, workers, args).items():
                    samples.setdefault((workers, consistency), []).append(sample)
                    print(f"round {round_} workers {workers} range-{consistency}: {sample.rate:.0f} req/s, "
                          f"{sample.server_us:.1f} us server CPU/req, tool {sample.tool_us:.1f} us/req "
                          f"({sample.tool_share:.2f} core), member {sample.member_share:.2f} core, "
                          f"workers {sample.workers_share:.2f} core, workers answered "
                          f"{sample.worker_answered}/{sample.requests}", flush=True)  # fmt: skip
    print(
        f"\nmedians of {args.rounds} alternated rounds; load tool pinned to CPU {args.load_cpu}, 64 clients, 16 conns"
    )
    columns = ("req/s", "x vs 0", "us CPU/req", "tool us/req", "tool core", "member core", "workers core",
               "by workers", "added/core")  # fmt: skip
    print(f"{'case':<24}{'workers':>8}" + "".join(f"{c:>13}" for c in columns))
    kind = "range-page" if args.page else "range"
    for consistency, name in (("s", f"{kind}-serializable"), ("l", f"{kind}-linearizable")):
        base = statistics.median(s.rate for s in samples[(counts[0], consistency)])
        alone = samples.get((0, consistency))
        c0 = statistics.median(s.member_cpu / s.requests for s in alone) if alone else None
        for workers in counts:
            runs = samples[(workers, consistency)]

            def median(field: str, runs: list[Sample] = runs) -> float:
                return statistics.median(getattr(s, field) for s in runs)

            rate = median("rate")
            figures = (f"{rate:.0f}", f"{rate / base:.2f}", f"{median('server_us'):.1f}", f"{median('tool_us'):.1f}",
                       f"{median('tool_share'):.2f}", f"{median('member_share'):.2f}",
                       f"{median('workers_share'):.2f}",
                       f"{statistics.median(s.worker_answered / s.requests for s in runs):.2f}",
                       added_per_core(runs, c0))  # fmt: skip
            print(f"{name:<24}{workers:>8}" + "".join(f"{f:>13}" for f in figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

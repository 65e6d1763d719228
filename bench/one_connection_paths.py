"""What a request costs on each path of a member with one read worker: served by the member, or by the worker
(answered there, or relayed to the member), from the runs of one scenario over a single connection.

    python bench/one_connection_paths.py [--scenario put] [--clients 64] [--runs 8] [--duration 2]
                                         [--consistency l]

Each run is `etcdx bench SCENARIO --conns 1`: the kernel gives that one connection to the member or to the worker
(SO_REUSEPORT), so all of a run's requests take one path. The run is put on the worker's path when the worker used
more than a third of the member's CPU over it. Per run: the path, req/s, p50 latency, and the CPU per request of
the member and of the worker (/proc, user + system). Then medians per path. One member serves every run; the
scenario's keys are written first. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

from read_workers_scaling import ROOT, running_member

from etcdx.cli.bench.proc_cpu import child_pids, process_cpu_seconds


def bench(endpoint: str, args: argparse.Namespace, *extra: str) -> dict:
    command = [sys.executable, "-m", "etcdx", "bench", "--endpoints", endpoint, "--conns", "1", "--json", *extra]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="put", help="an `etcdx bench` scenario: put, txn-cas, range")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--consistency", default="l", help="for range: l or s")
    args = parser.parse_args()
    keys = ["--key-space-size", "1000", "--key-size", "8", "--val-size", "256"]
    scenario = [args.scenario, *keys] if args.scenario != "range" else [
        "range", "--range-key", "00000500", "--consistency", args.consistency]  # fmt: skip
    paths: dict[str, list[tuple[float, float, float, float]]] = {"member": [], "worker": []}
    with tempfile.TemporaryDirectory(prefix="etcdx-paths-") as workdir, running_member(workdir, 1) as (proc, endpoint):
        bench(endpoint, args, "put", "--clients", "16", "--total", "1000", "--sequential-keys", *keys)
        (worker,) = child_pids(proc.pid)
        for _ in range(args.runs):
            member_before, worker_before = process_cpu_seconds(proc.pid), process_cpu_seconds(worker)
            report = bench(endpoint, args, *scenario, "--clients", str(args.clients), "--duration", str(args.duration))
            member_used = process_cpu_seconds(proc.pid) - member_before
            worker_used = process_cpu_seconds(worker) - worker_before
            requests = max(report["succeeded"], 1)
            path = "worker" if worker_used > member_used / 3 else "member"
            figures = (report["requests_per_second"], report["latency_seconds"]["p50"] * 1e3,
                       member_used / requests * 1e6, worker_used / requests * 1e6)  # fmt: skip
            paths[path].append(figures)
            print(f"{path:>6}: {figures[0]:8.0f} req/s, p50 {figures[1]:.3f} ms, member {figures[2]:6.1f} us/req, "
                  f"worker {figures[3]:6.1f} us/req", flush=True)  # fmt: skip
    print(f"\nmedians per path ({args.scenario}, {args.clients} clients on one connection)")
    for path, runs in paths.items():
        if runs:
            rate, p50, member, worker = (statistics.median(run[i] for run in runs) for i in range(4))
            print(f"{path:>6}: {len(runs)} runs, {rate:.0f} req/s, p50 {p50:.3f} ms, member {member:.1f} us/req, "
                  f"worker {worker:.1f} us/req")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Put, Txn and single-key Range through one member with 0 and 1 read workers, for one or more source trees.

    python bench/read_workers_relay.py [--trees /path/to/base,.] [--workers 0,1] [--rounds 3] [--duration 3]
                                       [--scenarios put,txn-cas,range-linearizable,range-serializable]

What a worker costs the calls it relays to its member (Put, a linearizable Range's barrier) and what it adds to
the Ranges it serves, at a moderate load: 16 clients over 4 connections, the native client of this tree's
`etcdx bench` for every target (so only the server differs). Each tree is a source checkout (a `git worktree`
of an older commit, for an A/B); its member runs from it with PYTHONPATH set to it (an extension built in that
tree is used; without one, its pure-Python twins). Targets alternate in each round: tree x workers, in order.
Per case: req/s and the server's CPU per request (member plus workers, /proc), medians over the rounds. Not a
test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from read_workers_scaling import ROOT, running_member

from etcdx.cli.bench.proc_cpu import server_cpu_seconds

SCENARIOS = {
    "put": ["put", "--key-space-size", "1000", "--key-size", "8", "--val-size", "256"],
    "txn-cas": ["txn-cas", "--key-space-size", "1000", "--key-size", "8", "--val-size", "256"],
    "range-linearizable": ["range", "--range-key", "00000500", "--consistency", "l"],
    "range-serializable": ["range", "--range-key", "00000500", "--consistency", "s"],
}


def bench(endpoint: str, args: argparse.Namespace, *extra: str) -> dict:
    command = [sys.executable, "-m", "etcdx", "bench", "--endpoints", endpoint, "--clients", str(args.clients),
               "--conns", str(args.conns), "--json", *extra]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def run_target(workdir: str, tree: str, workers: int, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    with running_member(workdir, workers, tree) as (proc, endpoint):
        load = ("--total", "1000", "--sequential-keys", "--clients", "1", "--conns", "1")
        bench(endpoint, args, *SCENARIOS["put"], *load)
        results = {}
        for name in args.scenarios:
            scenario = SCENARIOS[name]
            before = server_cpu_seconds(proc.pid)
            report = bench(endpoint, args, *scenario, "--duration", str(args.duration))
            used = server_cpu_seconds(proc.pid) - before
            results[name] = (report["requests_per_second"], used / max(report["requests"], 1) * 1e6)
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=ROOT, help="comma-separated source trees (default: this one)")
    parser.add_argument("--workers", default="0,1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--conns", type=int, default=4)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    args.scenarios = args.scenarios.split(",")
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    trees = [os.path.abspath(tree) for tree in args.trees.split(",")]
    counts = [int(n) for n in args.workers.split(",")]
    samples: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="etcdx-relay-bench-") as workdir:
        for round_ in range(args.rounds):
            for tree in trees:
                for workers in counts:
                    for name, sample in run_target(workdir, tree, workers, args).items():
                        samples.setdefault((tree, workers, name), []).append(sample)
                        print(f"round {round_} {tree} workers {workers} {name}: {sample[0]:.0f} req/s, "
                              f"{sample[1]:.1f} us server CPU/req", flush=True)  # fmt: skip
    print(f"\nmedians of {args.rounds} alternated rounds; {args.clients} clients over {args.conns} connections")
    print(f"{'scenario':<20}{'workers':>8}  {'req/s':>8}{'us CPU/req':>12}  tree")
    for name in args.scenarios:
        for tree in trees:
            for workers in counts:
                runs = samples[(tree, workers, name)]
                rate, cpu = statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs)
                print(f"{name:<20}{workers:>8}  {rate:>8.0f}{cpu:>12.1f}  {tree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

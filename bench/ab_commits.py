"""Two commits of etcdx against each other on this machine, alternated: req/s and server CPU per request.

    python bench/ab_commits.py BASE HEAD [--scenario put] [--clients 64] [--conns 8] [--rounds 4]
                               [--duration 5] [--workers 0] [--bench-arg=--key-space-size=100000 ...]

Each commit is checked out into a git worktree of its own (in a temporary directory, removed at the end) and its
extensions are built there. Each round starts a fresh member of BASE, runs `etcdx bench SCENARIO` against it (the
tool of this tree, --server-pid: the member and its workers' CPU over the run), stops it, then does the same for
HEAD; a Txn scenario's keys are written first. Per round and commit: req/s and server CPU per request. Then the
medians per commit. For a change's effect on a noisy machine, read the CPU per request. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from read_workers_scaling import ROOT, running_member


def worktree(commit: str, parent: str) -> str:
    """``commit`` checked out under ``parent``, with its extensions built."""
    path = os.path.join(parent, commit.replace("/", "_"))
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-f", path, commit], **quiet)
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=path, **quiet)
    return path


def bench(endpoint: str, pid: int, args: argparse.Namespace, *extra: str) -> dict:
    command = [sys.executable, "-m", "etcdx", "bench", "--endpoints", endpoint, "--clients", str(args.clients),
               "--conns", str(args.conns), "--server-pid", str(pid), "--json", *extra]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def one_run(tree: str, args: argparse.Namespace, workdir: str) -> dict:
    with running_member(workdir, args.workers, tree) as (proc, endpoint):
        if args.scenario.startswith("txn"):
            bench(endpoint, proc.pid, args, *args.bench_arg, "--total", "500", args.scenario)
        return bench(endpoint, proc.pid, args, *args.bench_arg, "--duration", str(args.duration), args.scenario)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("head")
    parser.add_argument("--scenario", default="put", help="an `etcdx bench` scenario")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=0, help="--experimental-read-workers of both members")
    parser.add_argument("--bench-arg", action="append", default=[], help="passed on to `etcdx bench` (repeatable)")
    args = parser.parse_args()
    parent = tempfile.mkdtemp(prefix="etcdx-ab-")
    trees = {}
    try:
        for commit in (args.base, args.head):
            trees[commit] = worktree(commit, parent)
        results: dict[str, list[dict]] = {commit: [] for commit in trees}
        for round_ in range(1, args.rounds + 1):
            for commit, tree in trees.items():
                result = one_run(tree, args, parent)
                results[commit].append(result)
                print(f"round {round_} {commit}: {result['requests_per_second']:.0f} req/s, "
                      f"{result['server_cpu_us_per_request']:.1f} us/req", flush=True)  # fmt: skip
        print(f"\n{args.scenario}, {args.clients} clients over {args.conns} connections, {args.workers} workers, "
              f"{args.rounds} rounds of {args.duration:g} s, medians:")  # fmt: skip
        print("| commit | req/s | server CPU us/req |\n|---|---|---|")
        for commit, runs in results.items():
            rate = statistics.median(r["requests_per_second"] for r in runs)
            cpu = statistics.median(r["server_cpu_us_per_request"] for r in runs)
            print(f"| {commit} | {rate:.0f} | {cpu:.1f} |")
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], check=False, capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

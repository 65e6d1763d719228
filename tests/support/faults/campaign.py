"""The fault campaign: runs of a 3-member etcdx cluster under traffic while a seeded schedule injects faults,
each run judged afterwards.

A campaign of ``faults`` faults is split into runs of at most ``faults_per_run`` (a fresh cluster each, as
etcd's robustness tests run short scenarios), so each run's history stays small enough for the full
linearizability search. In a run: ``clients`` KVClients and ``watchers`` Watchers run throughout; the
schedule draws a fault kind and a target (the leader half the time, else any member), injects it, heals
it, and waits until the cluster is healthy again (every member up, one leader, a linearizable Range
answered everywhere): that wait is the time to recover. Then a quiet pause, then the next fault.

Checks of a run, after a last put (the sentinel) gives the final revision and every watcher has caught
up to it:
- the clients' merged history is linearizable (tests/support/lincheck; UNKNOWN counts as unchecked);
- the true event history is read by a watch from revision 1 on one member; every acknowledged write is
  in it at its revision (else: a lost write), and every put in it carries a value some client wrote;
- every watch segment got exactly its due by watch_checker (ordered, unique, no gaps, atomic revisions);
- every member's HashKV at the final revision is the same.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support import watch_checker
from tests.support.faults import injectors
from tests.support.faults.cluster import FaultCluster, fault_cluster
from tests.support.faults.traffic import KVClient, Watcher, merged_history, prefix_end, start_threads
from tests.support.lincheck import LINEARIZABLE, VIOLATION, check
from tests.support.lincheck.history import DeleteRange, Operation, Put, Txn

PREFIX = b"robust/"
RECOVERY_DEADLINE = 30.0
CATCH_UP_DEADLINE = 20.0
PACE = 0.03
"""Seconds each client waits between operations: the linearizability search grows with the history, so
clients at full speed (about 200 operations/s for four) make a run's history too long to judge in time."""


@dataclass
class CampaignReport:
    faults: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    runs: int = 0
    operations: int = 0
    acknowledged_writes: int = 0
    unknown_writes: int = 0
    writes_found: int = 0
    client_errors: int = 0
    watch_segments: int = 0
    watch_events: int = 0
    recovery_seconds: list[float] = field(default_factory=list)
    unrecovered: int = 0
    crashes: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=Counter)
    check_seconds: float = 0.0
    violations: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def injected(self) -> int:
        return sum(self.faults.values())

    @property
    def unchecked_runs(self) -> int:
        return sum(n for v, n in self.verdicts.items() if v not in (LINEARIZABLE, VIOLATION))

    @property
    def passed(self) -> bool:
        return not self.violations and not self.unrecovered and not self.unchecked_runs and not self.crashes

    def summary(self) -> str:
        times = self.recovery_seconds
        recovery = (
            f"median {statistics.median(times):.2f} s, p90 {sorted(times)[int(0.9 * (len(times) - 1))]:.2f} s, "
            f"max {max(times):.2f} s"
            if times
            else "none"
        )
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.faults.items()))
        skipped = ", ".join(f"{k} {n} ({reason})" for (k, reason), n in sorted(self.skipped.items())) or "none"
        lines = [
            f"faults injected: {self.injected} ({kinds}) in {self.runs} runs",
            f"skipped: {skipped}",
            f"operations: {self.operations} ({self.acknowledged_writes} acknowledged writes, of which "
            f"{self.writes_found} changed the store and were found at their revision in the event history; "
            f"{self.unknown_writes} writes of unknown outcome, {self.client_errors} client errors)",
            f"watch: {self.watch_segments} segments, {self.watch_events} events received",
            f"time to recover: {recovery}; not recovered: {self.unrecovered}",
            f"member crashes (restarted): {sum(self.crashes.values())}"
            + "".join(f"\n  {n} x {reason}" for reason, n in self.crashes.most_common()),
            f"histories: {dict(self.verdicts)} (checked in {self.check_seconds:.0f} s)",
            f"violations: {len(self.violations)}",
        ]
        lines += [f"  {v}" for v in self.violations[:20]]
        return "\n".join(lines)


def _is_write(op: Operation) -> bool:
    return isinstance(op.request, (Put, DeleteRange, Txn))


def _sentinel(cluster: FaultCluster) -> int:
    """Puts a last key under the prefix through any member; its revision is the run's final revision."""
    deadline = time.monotonic() + RECOVERY_DEADLINE
    while True:
        for endpoint in cluster.endpoints:
            try:
                with grpc.insecure_channel(endpoint) as channel:
                    reply = rpc_pb2_grpc.KVStub(channel).Put(
                        rpc_pb2.PutRequest(key=PREFIX + b"sentinel", value=b"sentinel"), timeout=3
                    )
                return reply.header.revision
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.2)


def true_history(endpoint: str, final: int) -> dict[int, list[tuple[int, bytes, bytes]]]:
    """Every event under the prefix from revision 1 to ``final``, by a watch on ``endpoint``."""
    history: dict[int, list[tuple[int, bytes, bytes]]] = {}
    done = threading.Event()
    create = rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=PREFIX, range_end=prefix_end(PREFIX), start_revision=1)
    )

    def requests():
        yield create
        done.wait()

    with grpc.insecure_channel(endpoint) as channel:
        call = rpc_pb2_grpc.WatchStub(channel).Watch(requests(), timeout=CATCH_UP_DEADLINE)
        try:
            for response in call:
                for event in response.events:
                    value = event.kv.value if event.type == watch_checker.PUT else b""
                    history.setdefault(event.kv.mod_revision, []).append((event.type, event.kv.key, value))
                if history and max(history) >= final:
                    break
        finally:
            done.set()
            call.cancel()
    return history


def check_writes(history: list[Operation], truth: dict, report: CampaignReport, run: int) -> None:
    written = set()
    for op in history:
        if isinstance(op.request, Put):
            written.add(op.request.value)
        elif isinstance(op.request, Txn):
            written.update(p.value for p in op.request.success if isinstance(p, Put))
        if not op.known or not _is_write(op):
            continue
        req, resp = op.request, op.response
        if isinstance(req, Put) or (isinstance(req, Txn) and resp.succeeded):
            value = req.value if isinstance(req, Put) else req.success[0].value
            key = req.key if isinstance(req, Put) else req.success[0].key
            expected = (watch_checker.PUT, key, value)
        elif isinstance(req, DeleteRange) and resp.deleted:
            expected = (watch_checker.DELETE, req.key, b"")
        else:
            continue
        if expected in truth.get(resp.revision, []):
            report.writes_found += 1
        else:
            report.violations.append(
                f"run {run}: acknowledged write lost: client {op.client} {req} at revision {resp.revision} "
                f"(the event history has {truth.get(resp.revision, [])} there)"
            )
    written.add(b"sentinel")
    for revision, events in truth.items():
        for etype, _key, value in events:
            if etype == watch_checker.PUT and value not in written:
                report.violations.append(f"run {run}: revision {revision} puts {value!r}, which no client wrote")


def _check_hashes(cluster: FaultCluster, final: int, report: CampaignReport, run: int) -> None:
    hashes = {}
    for member in cluster.members:
        with grpc.insecure_channel(member.endpoint) as channel:
            # A linearizable read first: the member has then applied the final revision, which HashKV needs.
            rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=PREFIX), timeout=10)
            reply = rpc_pb2_grpc.MaintenanceStub(channel).HashKV(rpc_pb2.HashKVRequest(revision=final), timeout=10)
        hashes[member.name] = reply.hash
    if len(set(hashes.values())) != 1:
        report.violations.append(f"run {run}: members' HashKV at revision {final} differ: {hashes}")


def _crash_reason(log_tail: str) -> str:
    """The last exception line of a member's log ("module.Error: message"), or its exit."""
    lines = [line.strip(" |+") for line in log_tail.splitlines()]
    errors = [line for line in lines if "Error" in line.split(":", 1)[0] and ": " in line]
    return errors[-1] if errors else "exited: " + (lines[-1] if lines else "no log")


def _revive_crashed(cluster: FaultCluster, report: CampaignReport, run: int, echo) -> None:
    """Records and restarts every member that exited though no fault stopped it (a server bug: a member
    never dies of what the network or its peers do)."""
    for member in cluster.members:
        proc = member.process.proc
        if proc is not None and proc.poll() is not None:
            reason = _crash_reason(member.process.log_tail(60))
            report.crashes[reason] += 1
            line = f"run {run}: {member.name} crashed (exit {proc.returncode}): {reason}; restarting it"
            report.log.append(line)
            if echo:
                echo(line)
            member.process.launch()


def _recover(cluster: FaultCluster, report: CampaignReport, run: int, echo) -> float | None:
    """Seconds until the cluster is healthy (crashed members restarted meanwhile), or None past the deadline."""
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY_DEADLINE:
        _revive_crashed(cluster, report, run, echo)
        if cluster.healthy():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def _target(cluster: FaultCluster, rng: random.Random):
    leader = cluster.leader()
    if leader is not None and rng.random() < 0.5:
        return leader
    return rng.choice(cluster.members)


def run_once(
    directory: Path,
    faults: int,
    rng: random.Random,
    report: CampaignReport,
    run: int,
    *,
    kinds: tuple[str, ...],
    clients: int,
    watchers: int,
    pace: float,
    command: tuple[str, ...],
    echo=None,
) -> None:
    cluster = fault_cluster(directory, command=command)
    keys = [PREFIX + b"k%d" % k for k in range(5)]
    kv_clients = [KVClient(n, cluster.endpoints, keys, rng.randrange(1 << 30), pace) for n in range(clients)]
    watch_clients = [Watcher(n, cluster.endpoints, PREFIX) for n in range(watchers)]
    kv_stop, watch_stop = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []
    final, truth = 0, None
    try:
        cluster.start()
        threads = start_threads(kv_clients, kv_stop) + start_threads(watch_clients, watch_stop)
        injected = 0
        active = list(kinds)
        while injected < faults and active:
            time.sleep(rng.uniform(0.3, 1.0))
            _revive_crashed(cluster, report, run, echo)
            kind = rng.choice(active)
            target = _target(cluster, rng)
            try:
                what = injectors.KINDS[kind](cluster, target, rng)
            except injectors.Skipped as skipped:
                report.skipped[(kind, str(skipped))] += 1
                active.remove(kind)  # for this run: it would be skipped again
                continue
            except injectors.FaultFailed as failed:
                report.violations.append(f"run {run}: {failed}")
                what = f"{kind} on {target.name} (failed)"
            injected += 1
            report.faults[kind] += 1
            recovered = _recover(cluster, report, run, echo)
            if recovered is None:
                report.unrecovered += 1
                report.violations.append(
                    f"run {run}: not healthy {RECOVERY_DEADLINE} s after: {what} ({cluster.describe()})"
                )
                break
            report.recovery_seconds.append(recovered)
            line = f"run {run} fault {injected}: {what}; healthy {recovered:.2f} s later"
            report.log.append(line)
            if echo:
                echo(line)
        kv_stop.set()
        for thread in threads[:clients]:
            thread.join(timeout=30)
        if _recover(cluster, report, run, echo) is None:
            report.unrecovered += 1
        try:
            final = _sentinel(cluster)
            deadline = time.monotonic() + CATCH_UP_DEADLINE
            while time.monotonic() < deadline and any(w.last_revision() < final for w in watch_clients):
                time.sleep(0.1)
            watch_stop.set()
            for watcher in watch_clients:
                watcher.stop()
            for thread in threads[clients:]:
                thread.join(timeout=30)
            truth = true_history(cluster.endpoints[0], final)
            _check_hashes(cluster, final, report, run)
        except grpc.RpcError as exc:
            report.violations.append(
                f"run {run}: the end-of-run checks could not run: {exc.code().name} {exc.details()}"
            )
    finally:
        kv_stop.set()
        watch_stop.set()
        for watcher in watch_clients:
            watcher.stop()
        for thread in threads:
            thread.join(timeout=30)
        cluster.stop()
    history = merged_history(kv_clients)
    report.operations += len(history)
    report.acknowledged_writes += sum(1 for op in history if op.known and _is_write(op))
    report.unknown_writes += sum(1 for op in history if not op.known)
    report.client_errors += sum(c.errors for c in kv_clients)
    checking = time.monotonic()
    result = check(history)
    report.check_seconds += time.monotonic() - checking
    report.verdicts[result.verdict] += 1
    if result.verdict == VIOLATION:
        report.violations.append(f"run {run}: history not linearizable:\n{result.report}")
    elif result.verdict != LINEARIZABLE:
        report.log.append(f"run {run}: history not fully checked: {result.report}")
    if truth is None:
        return
    check_writes(history, truth, report, run)
    for watcher in watch_clients:
        for n, segment in enumerate(watcher.segments):
            report.watch_segments += 1
            report.watch_events += sum(len(r.events) for r in segment.responses)
            for problem in watch_checker.check(truth, segment, final):
                report.violations.append(f"run {run}: watcher {watcher.number} segment {n}: {problem}")


def campaign(
    directory: Path,
    *,
    faults: int,
    seed: int,
    faults_per_run: int = 25,
    kinds: tuple[str, ...] = tuple(injectors.KINDS),
    clients: int = 4,
    watchers: int = 2,
    pace: float = PACE,
    command: tuple[str, ...] = ("-m", "etcdx"),
    echo=None,
) -> CampaignReport:
    """Runs ``faults`` injected faults in runs of ``faults_per_run``; the schedule is drawn from ``seed``."""
    rng = random.Random(seed)
    report = CampaignReport()
    left, run = faults, 0
    while left > 0:
        count = min(left, faults_per_run)
        before = report.injected
        run_once(
            directory / f"run{run}",
            count,
            rng,
            report,
            run,
            kinds=kinds,
            clients=clients,
            watchers=watchers,
            pace=pace,
            command=command,
            echo=echo,
        )
        report.runs += 1
        run += 1
        left -= count
        if report.injected == before:  # every kind skipped: nothing can be injected
            break
    return report

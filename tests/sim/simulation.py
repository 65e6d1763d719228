"""A seeded simulation of a whole etcdx cluster in one process, judged by Raft's invariants and lincheck.

One seed gives one run, exactly (every choice comes from random.Random(seed) or generators derived from it;
simulated time only): 1, 3 or 5 members (and, from 3, two spares that may join as learners and be promoted),
a network that drops, duplicates, delays and reorders messages and is partitioned both ways and one way,
members that crash (losing every Ready not yet persisted), stay down a while and restart, logs compacted
into snapshots that lagging followers install, membership changes and leader transfers, while clients send
puts, txns, deletes, linearizable and serializable ranges and lease grants and revokes to any member.

After every event the Raft invariants are checked (tests/sim/invariants.py). At the end the clients' history
goes to lincheck, which requires it to be linearizable; serializable ranges are held to lincheck's weaker
rule (tests/support/lincheck/check.py): a serializable read returns exactly the store at the revision it
reports, that revision is at least the highest its own session had already been told (no going back for a
session), and it was reached no later than anything invoked after the read returned (no future reads); it
may be stale with respect to other sessions. A session is one client's requests to one member
(tests/sim/clients.py says why).

A request's outcome is unknown (possibly applied) when it timed out or its member crashed before answering.
A request the member's core refused at once (no leader known, a leader transfer running) entered no log and
is left out of the history: it had no effect, and its error says nothing about the store.

The last part of every run is calm (network healed, no new faults) so that the cluster recovers and the
clients' later reads reveal what happened to earlier writes.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from etcdx.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Message,
    MessageType,
    ProposalDroppedError,
    RaftError,
    Role,
)
from tests.sim.clients import Client, random_request
from tests.sim.invariants import Invariants
from tests.sim.member import MemberSettings, MemberShell
from tests.sim.network import Network, NetworkFaults
from tests.support.lincheck import LINEARIZABLE, check
from tests.support.lincheck import history as h

FAULTS = [
    "heal",
    "partition",
    "isolate",
    "one_way",
    "crash",
    "compact",
    "transfer",
    "conf",
    "isolate_leader",
    "crash_leader",
]
"""What a fault event may do; a Plan's fault_weights (one per kind) set how often each is chosen. The
*_leader kinds pick the current leader as the victim (Jepsen's partition-leader and kill-leader)."""


FLAVORS = ["calm", "chaotic", "crashy", "figure8"]
"""What kind of trouble a seed brings: calm (few crashes and partitions: long stretches with a leader, many
commits), chaotic (frequent crashes and network changes: many elections), crashy (members crash often, most
right after a write completes, and come back at once; messages are slow; no pre-vote or check-quorum:
elections overlap and a restarted member is asked for its vote in a term it already voted in), figure8
(crashy timings, with the leader isolated often, no crash right after a write, one
entry per append message and one message in flight: a new leader's log reaches followers entry by entry, so
an earlier term's entry can be acknowledged by a majority before the new term's first entry is, the setting
of Raft's figure 8)."""


@dataclass
class Plan:
    """Everything a seed decides before the run starts."""

    members: int
    flavor: str
    settings: MemberSettings
    network: NetworkFaults
    fault_weights: list[float]
    clients: int = 3
    duration: int = 2400
    """Simulated milliseconds of client traffic; the last `calm` of them without new faults."""
    calm: int = 800
    tick_ms: int = 10
    timeout: int = 200
    fault_gap: tuple[int, int] = (20, 150)
    downtime: tuple[int, int] = (10, 300)
    """How long a crashed member stays down before it restarts (simulated milliseconds)."""
    crash_after_write: float = 0.002
    """The chance that a member crashes right after one of its writes completes (and its released messages
    left): the moment when everything it acknowledged is durable and nothing else is."""

    @classmethod
    def from_seed(cls, rng: random.Random, members: int | None, flavor: str | None = None) -> Plan:
        size = members if members is not None else rng.choice([1, 3, 5])
        flavor = flavor if flavor is not None else rng.choices(FLAVORS, [4, 4, 1, 1])[0]
        settings = MemberSettings(
            election_tick=rng.choice([5, 10]),
            max_size_per_msg=rng.choice([None, 1, 256]),
            max_inflight_msgs=rng.choice([1, 4, 256]),
            pre_vote=rng.random() < 0.8,
            check_quorum=rng.random() < 0.8,
            snapshot_count=rng.choice([None, 5, 20]),
            catchup_entries=rng.choice([0, 3]),
        )
        network = NetworkFaults(drop=rng.choice([0.0, 0.02, 0.1]), duplicate=rng.choice([0.0, 0.05]))
        conf = 1.5 if size >= 3 else 0
        chaotic = flavor == "chaotic"
        #          heal partition isolate one_way crash compact transfer conf isolate_leader crash_leader
        weights = [3, 2, 2, 1, 3 if chaotic else 1, 2, 1, conf, 1 if chaotic else 0.3, 1 if chaotic else 0.3]
        plan = cls(size, flavor, settings, network, weights)
        if flavor in ("crashy", "figure8"):
            settings.election_tick, settings.pre_vote, settings.check_quorum = 5, False, False
            network.max_delay = 40
            plan.fault_weights = [1, 0, 0, 0, 1, 1, 1, conf, 0, 2]
            plan.fault_gap = (15, 60)
            plan.downtime = (0, 15)
            plan.crash_after_write = 0.3
        if flavor == "figure8":
            settings.max_size_per_msg, settings.max_inflight_msgs = 1, 1
            plan.fault_weights = [4, 0, 1, 0, 1, 0, 0, 0, 6, 1]
            plan.fault_gap = (2, 20)
            plan.crash_after_write = 0.0
        return plan


@dataclass
class Outcome:
    seed: int
    members: int
    flavor: str
    ops: int
    answered: int
    unknown: int
    verdict: str
    report: str
    faults: dict[str, int] = field(default_factory=dict)
    """How many faults of each kind were injected, and what the cluster did about them (snapshots
    installed, conf changes applied, leader transfers completed)."""
    seconds: float = 0.0
    history: list[h.Operation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict == LINEARIZABLE


class Simulation:
    def __init__(
        self,
        seed: int,
        members: int | None = None,
        flavor: str | None = None,
        judge_history: bool = True,
        check_invariants: bool = True,
    ) -> None:
        """judge_history=False skips lincheck (to measure invariant bugs fast); check_invariants=False skips
        the Raft invariants (to show what lincheck alone sees from the clients' side)."""
        self.seed = seed
        self.judge_history = judge_history
        self.check_invariants = check_invariants
        self.rng = random.Random(seed)
        self.plan = Plan.from_seed(self.rng, members, flavor)
        p = self.plan
        self.ids = list(range(1, p.members + 1))
        self.spares = [p.members + 1, p.members + 2] if p.members >= 3 else []
        self.conf = ConfState(frozenset(self.ids))
        self.members: dict[int, MemberShell] = {}
        for member_id in self.ids + self.spares:
            self.members[member_id] = MemberShell(member_id, self.conf, p.settings, seed)
        self.network = Network(random.Random(self.rng.random()), p.network)
        self.clients = [Client(c) for c in range(1, p.clients + 1)]
        self.inv = Invariants(self)
        self.now = 0
        self._sub = 0
        self._events: list[tuple[int, int, Callable[..., None], tuple]] = []
        self._seq = 0
        self._persisting: dict[int, bool] = {}
        self.faults: dict[str, int] = {}

    # -- the event queue -----------------------------------------------------------------------------------
    def at(self, when: int, fn: Callable[..., None], *args: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, fn, args))

    def run(self) -> Outcome:
        started = time.perf_counter()
        p = self.plan
        self.at(0, self._tick)
        self.at(self.rng.randint(*p.fault_gap), self._fault)
        for c in self.clients:
            self.at(self.rng.randint(0, 20), self._issue, c)
        end = p.duration + p.timeout + 50
        while self._events and self._events[0][0] <= end:
            when, _, fn, args = heapq.heappop(self._events)
            if when != self.now:
                self.now, self._sub = when, 0
            fn(*args)
            self._pump()
            if self.check_invariants:
                self.inv.check()
        for m in self.members.values():
            for what, n in m.counts.items():
                self.faults[what] = self.faults.get(what, 0) + n
        history = [op for c in self.clients for op in c.history]
        result = check(history if self.judge_history else [])
        answered = sum(1 for op in history if op.known)
        return Outcome(
            self.seed,
            p.members,
            p.flavor,
            len(history),
            answered,
            len(history) - answered,
            result.verdict,
            result.report,
            self.faults,
            time.perf_counter() - started,
            history,
        )

    def stamp(self) -> float:
        """The time a client sees an event: simulated milliseconds, plus a fraction that orders the events
        of one millisecond as they happened (lincheck orders A before B only if A returned before B's call)."""
        self._sub += 1
        return self.now + self._sub * 1e-6

    # -- members -------------------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Every live member takes its Readies: messages leave, a simulated fsync is started for them."""
        for m in self.members.values():
            if not m.is_up(self.now):
                continue
            out, states = m.take_readies()
            if self.check_invariants:
                self.inv.read_answered(m.id, states)
            self.send(out)
            m.serve_reads()
            if m.unpersisted and not self._persisting.get(m.id):
                self._persisting[m.id] = True
                number = m.unpersisted[-1].number
                self.at(self.now + self.rng.randint(0, 3), self._persisted, m, m.generation, number)

    def _persisted(self, m: MemberShell, generation: int, number: int) -> None:
        if m.generation != generation:
            return  # the member crashed while this write ran: it never completed
        self._persisting[m.id] = False
        self.send(m.persist_through(number))
        if self.rng.random() < self.plan.crash_after_write and not self._calm():
            self._crash(m)
            self.faults["crash_after_write"] = self.faults.get("crash_after_write", 0) + 1

    def _crash(self, m: MemberShell) -> None:
        m.crash_and_restart()
        self._persisting[m.id] = False
        m.down_until = self.now + self.rng.randint(*self.plan.downtime)

    def _tick(self) -> None:
        for m in self.members.values():
            if m.is_up(self.now):
                m.node.tick()
        self.at(self.now + self.plan.tick_ms, self._tick)

    # -- network -------------------------------------------------------------------------------------------
    def send(self, msgs: list[Message]) -> None:
        for msg in msgs:
            delays = self.network.arrivals(msg)
            if not delays:
                self._lost(msg)
            for delay in delays:
                self.at(self.now + delay, self._deliver, msg)

    def _deliver(self, msg: Message) -> None:
        to = self.members.get(msg.to)
        if to is None or not to.is_up(self.now) or not self.network.link_up(msg.sender, msg.to):
            self._lost(msg)
            return
        to.node.step(msg)
        if msg.type is MessageType.TIMEOUT_NOW:
            self.faults["transfer TimeoutNow delivered"] = self.faults.get("transfer TimeoutNow delivered", 0) + 1
        sender = self.members.get(msg.sender)
        if msg.type is MessageType.SNAP and sender is not None and sender.is_up(self.now):
            sender.node.report_snapshot(msg.to, failed=False)

    def _lost(self, msg: Message) -> None:
        sender = self.members.get(msg.sender)
        if msg.type is MessageType.SNAP and sender is not None and sender.is_up(self.now):
            sender.node.report_snapshot(msg.to, failed=True)

    # -- faults --------------------------------------------------------------------------------------------
    def _calm(self) -> bool:
        return self.now >= self.plan.duration - self.plan.calm

    def _fault(self) -> None:
        if self._calm():
            self.network.heal()
            return
        kind = self.rng.choices(FAULTS, self.plan.fault_weights)[0]
        everyone = self.ids + self.spares
        m = self.members[self.rng.choice(everyone)]
        if kind.endswith("_leader"):
            leader = self._leader()
            m = leader if leader is not None else m
            kind = kind.removesuffix("_leader") if leader is not None else "none"
        others = [i for i in everyone if i != m.id]
        done = True
        if kind == "heal":
            self.network.heal()
        elif kind == "partition" and others:
            k = self.rng.randint(1, len(everyone) - 1)
            group = self.rng.sample(everyone, k)
            self.network.partition(everyone, group, [i for i in everyone if i not in group])
        elif kind == "isolate" and others:
            self.network.partition(everyone, [m.id], others)
        elif kind == "one_way" and others:
            self.network.cut_one_way(m.id, self.rng.choice(others))
        elif kind == "crash" and m.is_up(self.now):
            self._crash(m)
        elif kind == "compact" and m.is_up(self.now):
            m.compact()
        elif kind in ("transfer", "conf"):
            done = self._leader_action(kind)
        else:
            done = False
        if done:
            self.faults[kind] = self.faults.get(kind, 0) + 1
        self.at(self.now + self.rng.randint(*self.plan.fault_gap), self._fault)

    def _leader(self) -> MemberShell | None:
        """The live leader of the highest term, if any."""
        leaders = [m for m in self.members.values() if m.is_up(self.now) and m.node.raft.role is Role.LEADER]
        return max(leaders, key=lambda x: x.node.raft.term) if leaders else None

    def _leader_action(self, kind: str) -> bool:
        m = self._leader()
        if m is None:
            return False
        conf = m.node.raft.tracker.conf
        if kind == "transfer":
            voters = sorted(conf.voters - {m.id})
            if not voters:
                return False
            m.node.transfer_leader(self.rng.choice(voters))
            return True
        choices = [ConfChange(ConfChangeType.REMOVE_NODE, v) for v in sorted(conf.voters)]
        choices += [ConfChange(ConfChangeType.ADD_NODE, v) for v in sorted(conf.learners)]
        choices += [ConfChange(ConfChangeType.ADD_LEARNER, v) for v in self.spares if v not in conf.learners]
        try:
            m.node.propose_conf_change(self.rng.choice(choices))
        except ProposalDroppedError:
            return False
        return True

    # -- clients -------------------------------------------------------------------------------------------
    def _issue(self, c: Client) -> None:
        if self.now >= self.plan.duration:
            return
        live = [m for m in self.members.values() if m.is_up(self.now)]
        if not live:
            self.at(self.now + 10, self._issue, c)
            return
        m = self.rng.choice(live)
        request = random_request(self.rng, c.id, c.sent + 1)
        number = c.start(request, self.stamp(), m.id)
        answer = lambda response: self._answer(c, number, response)  # noqa: E731
        if isinstance(request, h.Range):
            ctx = f"{m.id}.{m.generation}.{c.id}.{number}".encode()
            if not request.serializable and self.check_invariants:
                self.inv.read_issued(ctx)
            taken = m.read(request, ctx, answer)
        else:
            taken = m.write(request, answer)
        if not taken:
            c.withdraw()
            self.at(self.now + self.rng.randint(5, 20), self._issue, c)
        elif c.pending is not None and c.pending[0] == number:
            self.at(self.now + self.plan.timeout, self._answer, c, number, None)

    def _answer(self, c: Client, number: int, response: h.Response | None) -> None:
        if c.finish(number, self.stamp(), response):
            self.at(self.now + self.rng.randint(0, 20), self._issue, c)


def run(
    seed: int,
    members: int | None = None,
    flavor: str | None = None,
    judge_history: bool = True,
    check_invariants: bool = True,
) -> Outcome:
    """One run; members and flavor, when given, override the seed's choice (the rest still follows it)."""
    return Simulation(seed, members, flavor, judge_history, check_invariants).run()


def failure_of(
    seed: int, members: int | None = None, flavor: str | None = None, check_invariants: bool = True
) -> str | None:
    """Why the run of `seed` fails (a Raft invariant, the core refusing a state, or lincheck), or None."""
    try:
        outcome = run(seed, members, flavor, check_invariants=check_invariants)
    except AssertionError as exc:
        return f"{type(exc).__name__}: {exc}"
    except RaftError as exc:
        return f"{type(exc).__name__} raised by the core: {exc}"
    return None if outcome.ok else outcome.report

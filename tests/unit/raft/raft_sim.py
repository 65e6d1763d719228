"""A seeded random run of an in-memory cluster, with Raft's safety properties checked after every step.

The network drops, duplicates and reorders messages and partitions members (both ways and one way);
members persist their Readies asynchronously, crash (losing whatever was not persisted) and restart,
and compact their logs. One seed gives one run, exactly: `python -m raft_sim SEED` from this folder.
"""

from __future__ import annotations

import contextlib
import random
import sys
from dataclasses import dataclass, field

from raft_cluster import Cluster

from etcdx.raft import ConfChange, ConfChangeType, EntryType, ProposalDroppedError, Role, confchange
from etcdx.raft.quorum import quorum_size


class SafetyViolation(AssertionError):
    pass


@dataclass
class Invariants:
    """Raft's safety properties (Raft figure 3), checked against every member after every step."""

    cluster: Cluster
    leaders: dict[int, int] = field(default_factory=dict)
    """term -> the one member that led in it."""
    committed: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    """index -> (term, data) of every entry any member has reported committed."""
    committed_seen_at: dict[int, int] = field(default_factory=dict)
    """index -> the term of the member that first reported it committed (the leader that committed it
    had this term or an earlier one)."""
    applied: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    conf_changes: dict[int, ConfChange] = field(default_factory=dict)
    """index -> the committed conf change entries."""
    reads: dict[bytes, int] = field(default_factory=dict)
    """ReadIndex context -> the highest index committed anywhere when the read was issued."""

    def read_issued(self, ctx: bytes) -> None:
        self.reads[ctx] = max((m.node.raft.log.committed for m in self.cluster.members.values()), default=0)

    def read_answered(self, member: int, states: list) -> None:
        """Raft thesis §6.4: a read index covers every write committed before the read began, so serving the
        read at it (once applied) is linearizable."""
        for rs in states:
            floor = self.reads[rs.context]  # a duplicated request or answer can answer a read twice
            if rs.index < floor:
                raise SafetyViolation(f"read index (§6.4): {member} answered {rs.index}, {floor} was committed")

    def check(self) -> None:
        logs = {}
        for m in self.cluster.members.values():
            log = m.node.raft.log
            log.check_invariants()
            logs[m.id] = (log.first_index(), [(e.term, e.type, e.data) for e in log.all_entries()])
        self.election_safety()
        self.log_matching(logs)
        self.record_commits(logs)
        self.leader_completeness(logs)
        self.state_machine_safety()
        self.committed_is_durable_on_a_quorum()

    def election_safety(self) -> None:
        """Raft §5.2: at most one leader can be elected in a given term."""
        for m in self.cluster.members.values():
            r = m.node.raft
            if r.role is Role.LEADER and self.leaders.setdefault(r.term, m.id) != m.id:
                raise SafetyViolation(f"election safety (§5.2): {self.leaders[r.term]} and {m.id} led term {r.term}")

    def log_matching(self, logs: dict[int, tuple[int, list]]) -> None:
        """Raft §5.3: if two logs contain an entry with the same index and term, the logs are identical in all
        entries up through that index (checked over the part both still hold)."""
        ids = sorted(logs)
        for k, a in enumerate(ids):
            fa, la = logs[a]
            for b in ids[k + 1 :]:
                fb, lb = logs[b]
                lo = max(fa, fb)
                hi = min(fa + len(la), fb + len(lb)) - 1
                i = hi
                while i >= lo and la[i - fa][0] != lb[i - fb][0]:
                    i -= 1
                if i >= lo and la[lo - fa : i - fa + 1] != lb[lo - fb : i - fb + 1]:
                    raise SafetyViolation(f"log matching (§5.3): members {a} and {b} agree at {i} but differ before")

    def record_commits(self, logs: dict[int, tuple[int, list]]) -> None:
        for m in self.cluster.members.values():
            first, entries = logs[m.id]
            commit = m.node.raft.log.committed
            for i in range(max(first, commit - 50), commit + 1):
                term, etype, data = entries[i - first]
                if etype is EntryType.CONF_CHANGE:
                    self.conf_changes.setdefault(i, ConfChange.decode(data))
                seen = self.committed.setdefault(i, (term, data))
                if seen != (term, data):
                    raise SafetyViolation(f"a committed entry changed (§5.4): {i} was {seen}, {m.id} has {term}")
                self.committed_seen_at.setdefault(i, m.node.raft.term)

    def leader_completeness(self, logs: dict[int, tuple[int, list]]) -> None:
        """Raft §5.4: a leader's log holds every entry committed in earlier terms."""
        for m in self.cluster.members.values():
            r = m.node.raft
            if r.role is not Role.LEADER:
                continue
            first, entries = logs[m.id]
            for i, (term, data) in self.committed.items():
                if i < first or self.committed_seen_at[i] >= r.term:
                    continue
                if i >= first + len(entries) or entries[i - first][0::2] != (term, data):
                    raise SafetyViolation(f"leader completeness (§5.4): leader {m.id} of term {r.term} lacks {i}")

    def state_machine_safety(self) -> None:
        """Raft §5.4.3: no two members apply different entries at the same index."""
        for m in self.cluster.members.values():
            for index, term, data in m.applied[-20:]:
                if self.applied.setdefault(index, (term, data)) != (term, data):
                    raise SafetyViolation(f"state machine safety (§5.4.3): {m.id} applied {term}/{index} {data}")

    def committed_is_durable_on_a_quorum(self) -> None:
        """Raft §5.3 with thesis §3.8: an entry is committed only once a majority hold it on disk, so the
        highest committed entry is in the durable storage of a quorum of voters. Conf changes take effect when
        applied and one at a time (thesis §4.1), so that quorum is of the configuration after the last committed
        change before the entry, or of the one before it."""
        if not self.committed:
            return
        top = max(self.committed)
        term = self.committed[top][0]
        configs = [self.cluster.conf]
        for i in sorted(self.conf_changes):
            if i < top:
                configs.append(confchange.apply(configs[-1], self.conf_changes[i]))
        holders = set()
        for member_id, m in self.cluster.members.items():
            s = m.storage
            if top < s.first_index() or (top <= s.last_index() and s.term(top) == term):
                holders.add(member_id)
        if not any(len(holders & c.voters) >= quorum_size(c.voters) for c in configs[-2:]):
            raise SafetyViolation(f"durability: committed entry {top} is on disk only at {sorted(holders)}")


ACTIONS = ["tick", "ready", "persist", "deliver", "propose", "net", "restart", "compact", "read", "transfer", "conf"]
"""What a step can do; `weights` (one per action) set how often each is chosen."""


def run(
    seed: int,
    members: int = 3,
    steps: int = 1500,
    check_liveness: bool = True,
    weights: list[float] | None = None,
    tick_weight: float = 4,
) -> Cluster:
    rng = random.Random(seed)
    ids = list(range(1, members + 1))
    cluster = Cluster(
        ids,
        seed=seed,
        election_tick=rng.choice([3, 5, 10]),
        heartbeat_tick=1,
        max_size_per_msg=rng.choice([None, 1, 64]),
        max_inflight_msgs=rng.choice([1, 2, 256]),
        pre_vote=rng.random() < 0.8,
        check_quorum=rng.random() < 0.8,
    )
    inv = Invariants(cluster)
    proposals = 0
    actions = ACTIONS
    if weights is None:
        # Half the seeds are calm (a few crashes and partitions: long stretches with a leader, many commits),
        # half chaotic (frequent crashes and network changes: many elections, more overlap between terms).
        chaotic = rng.random() < 0.5
        faults = [3, 3] if chaotic else [0.5, 1]
        weights = [tick_weight, 20, 20, 45, 10, faults[1], faults[0], 1, 4, 2, 2 if members >= 3 else 0]
    spares = [members + 1, members + 2]
    if members >= 3:
        for spare in spares:  # started knowing the bootstrap membership, outside it until added
            cluster.add_member(spare, cluster.conf)
    all_ids = ids + spares if members >= 3 else ids
    for _ in range(steps):
        action = rng.choices(actions, weights)[0]
        m = cluster.members[rng.choice(all_ids)]
        if action == "tick":  # time passes for every member
            for member_id in all_ids:
                cluster.members[member_id].node.tick()
        elif action == "ready":  # some members take a Ready (and send what may go at once)
            for member_id in all_ids:
                w = cluster.members[member_id]
                if rng.random() < 0.5 and w.node.has_ready():
                    rd = w.node.ready()
                    cluster.send(rd.messages)
                    w.unpersisted.append(rd)
                    inv.read_answered(w.id, rd.read_states)
        elif action == "persist":  # some members finish a write
            for member_id in all_ids:
                w = cluster.members[member_id]
                if rng.random() < 0.5 and w.unpersisted:
                    done, released = w.persist_next()
                    cluster.send(released)
                    w.apply(done)
        elif action == "deliver":  # a few messages arrive, in any order; some are lost or duplicated
            for _ in range(min(len(cluster.network), rng.randint(1, 4))):
                k = rng.randrange(len(cluster.network))
                msg = cluster.network[k]
                roll = rng.random()
                if roll < 0.1:
                    del cluster.network[k]
                    cluster.drop(msg)
                elif roll < 0.15:
                    cluster.deliver(msg)  # duplicated: it stays in flight
                else:
                    del cluster.network[k]
                    cluster.deliver(msg)
        elif action == "propose":
            proposals += 1
            with contextlib.suppress(ProposalDroppedError):
                m.node.propose(f"{seed}-{proposals}".encode())
        elif action == "net" and members > 1:
            roll = rng.random()
            others = [i for i in all_ids if i != m.id]
            if roll < 0.4:
                cluster.heal()
            elif roll < 0.7:
                cluster.isolate(m.id)
            elif roll < 0.85:
                partner = rng.choice(others)
                cluster.partition([m.id, partner], [i for i in others if i != partner])
            else:
                cluster.cut.add((m.id, rng.choice(others)))  # one way only
        elif action == "read":
            proposals += 1
            ctx = f"read-{proposals}".encode()
            with contextlib.suppress(ProposalDroppedError):
                inv.read_issued(ctx)
                m.node.read_index(ctx)
        elif action == "transfer":
            if m.node.raft.role is Role.LEADER and members > 1:
                m.node.transfer_leader(rng.choice([i for i in all_ids if i != m.id]))
        elif action == "conf":
            if m.node.raft.role is Role.LEADER:
                conf = m.node.raft.tracker.conf
                choices = [ConfChange(ConfChangeType.REMOVE_NODE, v) for v in conf.voters]
                choices += [ConfChange(ConfChangeType.ADD_NODE, v) for v in conf.learners]
                choices += [ConfChange(ConfChangeType.ADD_LEARNER, v) for v in spares if v not in conf.learners]
                with contextlib.suppress(ProposalDroppedError):
                    m.node.propose_conf_change(rng.choice(choices))
        elif action == "restart":
            cluster.restart(m.id)
        elif action == "compact":
            applied = m.applied_index()
            if applied > m.storage.first_index():
                m.compact(applied)
        inv.check()
    if check_liveness:
        settle(cluster, inv, rng)
    return cluster


def settle(cluster: Cluster, inv: Invariants, rng: random.Random) -> None:
    """Heal everything and run synchronously: a leader must emerge and every member must catch up with it."""
    cluster.heal()
    for m in cluster.members.values():
        while m.unpersisted:
            done, released = m.persist_next()
            cluster.send(released)
            m.apply(done)
    cluster.on_ready = inv.read_answered
    for _ in range(200):
        cluster.stabilize()
        inv.check()
        leader = cluster.leader()
        if leader is not None:
            lead = cluster.members[leader].node.raft
            conf = lead.tracker.conf
            if lead.committed_entry_in_current_term() and all(
                cluster.members[i].node.raft.log.committed == lead.log.committed for i in conf.voters | conf.learners
            ):
                return
        for member_id in sorted(cluster.members):
            cluster.tick(member_id)
    raise AssertionError("liveness: no leader brought every member up to date after healing")


if __name__ == "__main__":
    first = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    failures = 0
    for seed in range(first, first + count):
        for size in (1, 3, 5):
            try:
                run(seed, size)
            except AssertionError as exc:
                failures += 1
                print(f"seed {seed} with {size} members: {exc}")
    print(f"seeds {first}..{first + count - 1} x 1, 3 and 5 members: {3 * count - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)

"""A small interpreter for Raft interaction scenarios: text files of commands, each followed by the output
it must produce (in the manner of etcd-io/raft's datadriven testdata, with our own command set).

    # a comment
    add-nodes 3 pre-vote=false
    ----
    ok

Commands (ids are member ids; `ids...` means all members when omitted):
  add-nodes N [voters=1,2] [learners=3] [pre-vote=B] [check-quorum=B] [election=T] [heartbeat=T]
            [max-size=BYTES] [max-inflight=N]      create members 1..N
  add-member ID                                    start an empty member that knows the bootstrap membership
  campaign ID | tick-election ID | tick-heartbeat ID | tick ID [N]
  propose ID DATA | propose-conf-change ID (add|add-learner|remove) MEMBER | read-index ID CONTEXT
  transfer-leader ID TRANSFEREE | compact ID INDEX | restart ID
  process-ready ids...     take a Ready, persist it at once, apply it (synchronous shell)
  take-ready ID            take a Ready and keep it unpersisted (asynchronous shell)
  persist ID               persist the oldest Ready taken, report it, apply it
  deliver-msgs [drop] ids...   step (or drop) every message in flight to these members
  stabilize [ids...]       process readies and deliver messages until nothing moves
  partition A,B / C,D | isolate ID | heal
  raft-state | raft-log ID | status ID | applied ID
"""

from __future__ import annotations

import os
from pathlib import Path

from raft_cluster import Cluster

from etcdx.raft import ConfChange, ConfChangeType, ProposalDroppedError, Ready
from etcdx.raft.messages import describe_entry

REWRITE = os.environ.get("ETCDX_RAFT_REWRITE") == "1"


def describe_ready(member: int, rd: Ready) -> list[str]:
    out = [f"> {member} handling Ready" + (" (must sync)" if rd.must_sync else "")]
    if rd.soft_state is not None:
        out.append(f"  SoftState Lead:{rd.soft_state.leader} State:{rd.soft_state.role.value}")
    if rd.hard_state is not None:
        hs = rd.hard_state
        out.append(f"  HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}")
    if rd.snapshot is not None:
        s = rd.snapshot
        out.append(f"  Snapshot Index:{s.index} Term:{s.term} Voters:{sorted(s.conf_state.voters)}")
    for title, entries in (("Entries", rd.entries), ("CommittedEntries", rd.committed_entries)):
        if entries:
            out.append(f"  {title}:")
            out.extend(f"    {describe_entry(e)}" for e in entries)
    for title, msgs in (("Messages", rd.messages), ("Messages after persist", rd.persisted_messages)):
        if msgs:
            out.append(f"  {title}:")
            out.extend(f"    {m}" for m in msgs)
    for rs in rd.read_states:
        out.append(f"  ReadState Index:{rs.index} Context:{rs.context.decode()}")
    return out


class Scenario:
    def __init__(self) -> None:
        self.cluster: Cluster | None = None

    @property
    def c(self) -> Cluster:
        assert self.cluster is not None, "add-nodes first"
        return self.cluster

    def ids(self, args: list[str]) -> list[int]:
        return [int(a) for a in args] if args else sorted(self.c.members)

    def run(self, line: str) -> list[str]:
        words = line.split()
        handler = getattr(self, "cmd_" + words[0].replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {words[0]!r}")
        out = handler(words[1:])
        return out or ["ok"]

    # -- setup ---------------------------------------------------------------------------------------------
    def cmd_add_nodes(self, args: list[str]) -> list[str]:
        n = int(args[0])
        opts = dict(a.split("=", 1) for a in args[1:])
        ids = list(range(1, n + 1))

        def id_list(key: str) -> list[int] | None:
            return [int(x) for x in opts[key].split(",")] if key in opts else None

        voters, learners = id_list("voters"), id_list("learners")
        if voters is None:
            voters = [i for i in ids if i not in (learners or [])]
        cfg: dict[str, object] = {
            "pre_vote": opts.get("pre-vote", "true") == "true",
            "check_quorum": opts.get("check-quorum", "true") == "true",
            "election_tick": int(opts.get("election", "10")),
            "heartbeat_tick": int(opts.get("heartbeat", "1")),
            "max_inflight_msgs": int(opts.get("max-inflight", "256")),
        }
        if "max-size" in opts:
            cfg["max_size_per_msg"] = int(opts["max-size"])
        self.cluster = Cluster(ids, voters=voters, learners=learners, **cfg)
        return []

    def cmd_add_member(self, args: list[str]) -> list[str]:
        # Like a member started with --initial-cluster: it knows the bootstrap configuration and replays the
        # conf changes after it from the log (or gets a snapshot if the leader compacted them away).
        self.c.add_member(int(args[0]), self.c.conf)
        return []

    def cmd_restart(self, args: list[str]) -> list[str]:
        m = self.c.restart(int(args[0]))
        r = m.node.raft
        return [f"{m.id} restarted: term {r.term} vote {r.vote} commit {r.log.committed} last {r.log.last_index()}"]

    # -- inputs --------------------------------------------------------------------------------------------
    def _role_change(self, member: int, fn) -> list[str]:
        r = self.c.members[member].node.raft
        before = (r.role, r.term)
        fn()
        if (r.role, r.term) != before:
            return [f"{member} is {r.role.value} at term {r.term}"]
        return []

    def cmd_campaign(self, args: list[str]) -> list[str]:
        member = int(args[0])
        return self._role_change(member, self.c.members[member].node.campaign)

    def cmd_tick(self, args: list[str]) -> list[str]:
        member = int(args[0])
        n = int(args[1]) if len(args) > 1 else 1
        return self._role_change(member, lambda: self.c.tick(member, n))

    def cmd_tick_election(self, args: list[str]) -> list[str]:
        member = int(args[0])
        r = self.c.members[member].node.raft
        n = r.cfg.election_tick if r.lead == r.id else r.randomized_election_timeout - r.election_elapsed
        return self._role_change(member, lambda: self.c.tick(member, max(n, 1)))

    def cmd_tick_heartbeat(self, args: list[str]) -> list[str]:
        member = int(args[0])
        r = self.c.members[member].node.raft
        return self._role_change(member, lambda: self.c.tick(member, r.cfg.heartbeat_tick))

    def _propose(self, fn) -> list[str]:
        try:
            fn()
        except ProposalDroppedError as exc:
            return [f"dropped: {exc}"]
        return []

    def cmd_propose(self, args: list[str]) -> list[str]:
        node = self.c.members[int(args[0])].node
        return self._propose(lambda: node.propose(args[1].encode()))

    def cmd_propose_conf_change(self, args: list[str]) -> list[str]:
        node = self.c.members[int(args[0])].node
        kind = {"add": ConfChangeType.ADD_NODE, "add-learner": ConfChangeType.ADD_LEARNER}.get(
            args[1], ConfChangeType.REMOVE_NODE
        )
        if args[1] not in ("add", "add-learner", "remove"):
            raise ValueError(args[1])
        return self._propose(lambda: node.propose_conf_change(ConfChange(kind, int(args[2]))))

    def cmd_read_index(self, args: list[str]) -> list[str]:
        node = self.c.members[int(args[0])].node
        return self._propose(lambda: node.read_index(args[1].encode()))

    def cmd_transfer_leader(self, args: list[str]) -> list[str]:
        self.c.members[int(args[0])].node.transfer_leader(int(args[1]))
        return []

    def cmd_compact(self, args: list[str]) -> list[str]:
        m = self.c.members[int(args[0])]
        m.compact(int(args[1]))
        return [f"{m.id} log now starts at {m.storage.first_index()}"]

    # -- readies and messages ------------------------------------------------------------------------------
    def cmd_process_ready(self, args: list[str]) -> list[str]:
        out: list[str] = []
        for member in self.ids(args):
            m = self.c.members[member]
            if not m.node.has_ready():
                continue
            rd = m.node.ready()
            out.extend(describe_ready(member, rd))
            self.c.send(rd.messages)
            m.unpersisted.append(rd)
            while m.unpersisted:
                done, released = m.persist_next()
                self.c.send(released)
                m.apply(done)
        return out

    def cmd_take_ready(self, args: list[str]) -> list[str]:
        member = int(args[0])
        m = self.c.members[member]
        if not m.node.has_ready():
            return ["no Ready"]
        rd = m.node.ready()
        self.c.send(rd.messages)
        m.unpersisted.append(rd)
        return describe_ready(member, rd)

    def cmd_persist(self, args: list[str]) -> list[str]:
        m = self.c.members[int(args[0])]
        if not m.unpersisted:
            return ["nothing to persist"]
        done, released = m.persist_next()
        self.c.send(released)
        m.apply(done)
        out = [f"> {m.id} persisted Ready {done.number}"]
        out.extend(f"  sends {msg}" for msg in released)
        if done.committed_entries:
            out.append("  applied " + ", ".join(describe_entry(e) for e in done.committed_entries))
        return out

    def cmd_deliver_msgs(self, args: list[str]) -> list[str]:
        drop = bool(args) and args[0] == "drop"
        out: list[str] = []
        for member in self.ids(args[1:] if drop else args):
            msgs = self.c.take_for(member)
            if not msgs:
                continue
            for msg in msgs:
                if drop:
                    self.c.drop(msg)
                    out.append(f"dropped: {msg}")
                elif self.c.deliver(msg):
                    out.append(str(msg))
                else:
                    out.append(f"lost: {msg}")
        return out

    def cmd_stabilize(self, args: list[str]) -> list[str]:
        out: list[str] = []
        for _ in range(100):
            step = self.cmd_process_ready(args) + self.cmd_deliver_msgs(args)
            if not step:
                return out
            out.extend(step)
        raise AssertionError("stabilize did not settle")

    def cmd_partition(self, args: list[str]) -> list[str]:
        groups = " ".join(args).split("/")
        self.c.partition(*[[int(x) for x in g.replace(",", " ").split()] for g in groups])
        return []

    def cmd_isolate(self, args: list[str]) -> list[str]:
        self.c.isolate(int(args[0]))
        return []

    def cmd_heal(self, args: list[str]) -> list[str]:
        self.c.heal()
        return []

    # -- inspection ----------------------------------------------------------------------------------------
    def cmd_raft_state(self, args: list[str]) -> list[str]:
        out = []
        for member in self.ids(args):
            r = self.c.members[member].node.raft
            conf = r.tracker.conf
            kind = "voter" if member in conf.voters else "learner" if member in conf.learners else "not in config"
            out.append(
                f"{member}: {r.role.value} ({kind}) term={r.term} lead={r.lead} commit={r.log.committed}"
                f" applied={r.log.applied} last={r.log.last_index()}"
            )
        return out

    def cmd_raft_log(self, args: list[str]) -> list[str]:
        return self.c.describe_log(int(args[0])).splitlines()

    def cmd_status(self, args: list[str]) -> list[str]:
        r = self.c.members[int(args[0])].node.raft
        return [f"{m}: {p!r}" for m, p in sorted(r.tracker.progress.items())]

    def cmd_applied(self, args: list[str]) -> list[str]:
        m = self.c.members[int(args[0])]
        return [f"{i}/{t} {d.decode()}" for i, t, d in m.applied] or ["(nothing)"]


def run_file(path: Path) -> tuple[str, str]:
    """Run a scenario file; returns (expected text, actual text) with outputs in place."""
    text = path.read_text()
    scenario = Scenario()
    out_lines: list[str] = []
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        line = lines[k]
        if not line.strip() or line.startswith("#"):
            out_lines.append(line)
            k += 1
            continue
        out_lines.append(line)
        k += 1
        if k >= len(lines) or lines[k] != "----":
            raise ValueError(f"{path.name}: '----' expected after {line!r}")
        out_lines.append("----")
        k += 1
        while k < len(lines) and lines[k].strip():
            k += 1  # the recorded output, replaced by the actual one
        out_lines.extend(scenario.run(line))
    actual = "\n".join(out_lines) + "\n"
    if REWRITE:
        path.write_text(actual)
    return text, actual

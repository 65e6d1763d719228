"""The fault kinds: each ``inject(cluster, target, rng)`` puts one fault on the cluster, holds it, heals it,
and returns a short description. Times are drawn from the seeded ``rng``; holds are longer than the
election timeout (etcd's default 1 s) so that each fault can cost the cluster its leader.

- ``kill``: kill -9 of the target, down for a while, then started again on its data dir;
- ``pause``: SIGSTOP, then SIGCONT;
- ``partition``: the target cut off from every other member in both directions;
- ``one-way``: only the target's outbound or only its inbound peer traffic cut;
  (partitions: ``blackhole`` or ``reset`` mode, see proxy.py);
- ``slow-fsync``: the slow-disk member's fsyncs each wait a delay (LazyFS slow-fsync mode);
- ``member-replace``: the target removed (MemberRemove), its data dir wiped, added back (MemberAdd) and
  started with --initial-cluster-state existing: under its name and peer URL, or as a new member under new
  ones. A change the cluster refuses raises ``FaultFailed`` (a violation: a healthy cluster takes it).
"""

from __future__ import annotations

import random
import signal
import time

from tests.support.faults import member_change
from tests.support.faults.cluster import FaultCluster, Member
from tests.support.faults.proxy import BLACKHOLE, RESET


class Skipped(Exception):
    """The fault kind cannot run against this server; the message says why."""


class FaultFailed(Exception):
    """The fault could not be carried out because the cluster refused an operator's request; the message
    says which."""


def kill(cluster: FaultCluster, target: Member, rng: random.Random) -> str:
    target.process.kill9()
    down = rng.uniform(0.3, 1.5)
    time.sleep(down)
    target.process.launch()
    return f"kill -9 {target.name}, down {down:.1f} s"


def pause(cluster: FaultCluster, target: Member, rng: random.Random) -> str:
    hold = rng.uniform(1.5, 3.0)
    target.process.proc.send_signal(signal.SIGSTOP)
    target.paused = True
    try:
        time.sleep(hold)
    finally:
        target.process.proc.send_signal(signal.SIGCONT)
        target.paused = False
    return f"SIGSTOP {target.name} for {hold:.1f} s"


def _hold_cut(cluster: FaultCluster, pairs: list[tuple[int, int]], mode: str, hold: float) -> None:
    for sender, receiver in pairs:
        cluster.proxies.cut(sender, receiver, mode)
    try:
        time.sleep(hold)
    finally:
        cluster.proxies.heal()


def partition(cluster: FaultCluster, target: Member, rng: random.Random) -> str:
    mode, hold = rng.choice((BLACKHOLE, RESET)), rng.uniform(1.5, 3.0)
    others = [m.member_id for m in cluster.members if m is not target]
    pairs = [(target.member_id, o) for o in others] + [(o, target.member_id) for o in others]
    _hold_cut(cluster, pairs, mode, hold)
    return f"partition {target.name} from the rest ({mode}) for {hold:.1f} s"


def one_way(cluster: FaultCluster, target: Member, rng: random.Random) -> str:
    mode, hold = rng.choice((BLACKHOLE, RESET)), rng.uniform(1.5, 3.0)
    others = [m.member_id for m in cluster.members if m is not target]
    outbound = rng.random() < 0.5
    pairs = [(target.member_id, o) if outbound else (o, target.member_id) for o in others]
    _hold_cut(cluster, pairs, mode, hold)
    return f"one-way cut of {target.name}'s {'outbound' if outbound else 'inbound'} traffic ({mode}) for {hold:.1f} s"


def slow_fsync(cluster: FaultCluster, target: Member, rng: random.Random) -> str:
    if cluster.slow_disk_member is None:
        raise Skipped("no member on LazyFS")
    delay, hold = rng.uniform(0.2, 1.0), rng.uniform(2.0, 4.0)
    cluster.set_fsync_delay(delay)
    try:
        time.sleep(hold)
    finally:
        cluster.set_fsync_delay(0)
    return f"slow fsync on {cluster.slow_disk_member}: {delay:.2f} s each, for {hold:.1f} s"


def member_replace(cluster: FaultCluster, target: Member, rng: random.Random) -> str:
    """Half the time the target comes back under its name and peer URL, else under new ones (member_change)."""
    try:
        return member_change.rejoin(cluster, target, new_identity=rng.random() < 0.5)
    except member_change.ChangeFailed as exc:
        raise FaultFailed(f"member change on {target.name}: {exc}") from None


KINDS = {
    "kill": kill,
    "pause": pause,
    "partition": partition,
    "one-way": one_way,
    "slow-fsync": slow_fsync,
    "member-replace": member_replace,
}

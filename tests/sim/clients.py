"""Simulated clients: each one sequential, sending a random KV or lease request to a random live member and
waiting for the answer or its timeout (in simulated time). Every request goes into the history lincheck
judges; a request that timed out or failed without an answer is recorded with an unknown outcome.

In the history, an operation's client is its session: the client and the member it asked
(``session_id``). lincheck's rule for serializable reads (never below a revision the same client was told
before) is then checked per session, which is what etcd promises: a member's applied state never goes back,
but two members may be at different revisions, so a client that moves to a lagging member may read older
data there (etcd's clientv3 pins a connection to one endpoint for this reason).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tests.support.lincheck import history as h

KEYS = [b"a", b"b", b"c", b"d"]
LEASES = [11, 12, 13]


def random_request(rng: random.Random, client: int, n: int) -> h.Request:
    """One request: puts (some with a lease), txns, deletes, linearizable and serializable ranges, leases."""
    key = rng.choice(KEYS)
    value = f"{client}.{n}".encode()
    roll = rng.random()
    if roll < 0.25:
        return h.Put(key, value, prev_kv=rng.random() < 0.3)
    if roll < 0.32:
        return h.Put(key, value, lease=rng.choice(LEASES))
    if roll < 0.50:
        return h.Range(key) if rng.random() < 0.6 else h.Range(b"a", b"\0")
    if roll < 0.60:
        return h.Range(key, serializable=True) if rng.random() < 0.6 else h.Range(b"a", b"\0", serializable=True)
    if roll < 0.67:
        return h.DeleteRange(key, prev_kv=rng.random() < 0.5)
    if roll < 0.85:
        target = rng.choice(["value", "version", "mod"])
        operand = {"value": f"{rng.randrange(client + 1)}.{rng.randrange(n + 1)}".encode(), "version": 1}.get(
            target, rng.randrange(1, 8)
        )
        other = rng.choice(KEYS)
        return h.Txn(
            (h.Compare(key, target, rng.choice(["=", "!=", ">", "<"]) if target != "value" else "=", operand),),
            success=(h.Put(other, value),),
            failure=(h.Range(key), h.Put(key, value)) if rng.random() < 0.5 else (h.Range(other),),
        )
    if roll < 0.93:
        return h.LeaseGrant(rng.choice(LEASES))
    return h.LeaseRevoke(rng.choice(LEASES))


@dataclass
class Client:
    id: int
    sent: int = 0
    pending: tuple[int, float, h.Request, int] | None = None
    """(request number, call time, request, member asked) of the request in flight."""
    history: list[h.Operation] = field(default_factory=list)

    def start(self, request: h.Request, now: float, member: int) -> int:
        self.sent += 1
        self.pending = (self.sent, now, request, member)
        return self.sent

    def withdraw(self) -> None:
        """The request in flight was refused before it had any effect: it is left out of the history."""
        self.pending = None

    def finish(self, number: int, now: float, response: h.Response | None) -> bool:
        """Record the outcome of request `number` (None: unknown); False if it was no longer pending (it timed
        out already, or a duplicate answer)."""
        if self.pending is None or self.pending[0] != number:
            return False
        _, call, request, member = self.pending
        self.pending = None
        session = session_id(self.id, member)
        if response is None:
            self.history.append(h.Operation(session, call, None, request, None))
        else:
            self.history.append(h.Operation(session, call, now, request, response))
        return True


def session_id(client: int, member: int) -> int:
    return client * 100 + member

"""The lessor: leases, their TTLs and the keys attached to them (etcd's lessor). Pure.

Time comes in through ``clock`` (seconds, monotonic) given by the server. Grant and revoke are
applied from committed entries on every member; renew (keep-alive), expiry and promotion are the
leader's business. Invariant: ``_lease_of[key] == id`` exactly when ``key in leases[id].keys``.
Checkpoints (--experimental-enable-lease-checkpoint, etcd's): the leader records each lease's remaining TTL
through the log every ``checkpoint_interval`` seconds (``due_checkpoints``; applied with ``checkpoint`` on every
member), and ``promote`` starts a lease from its remaining TTL rather than its whole TTL; a renewal clears it.
Expiry order: ``_queue`` is a min-heap of (expiry, id) holding an entry for every lease with a finite
expiry, plus stale entries (a lease renewed or revoked since) that are dropped when they surface, so a
check for expired leases costs O(k log n) for k due leases, not a scan of all n.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from etcdx import errors

MAX_LEASE_TTL = 9_000_000_000
FOREVER = math.inf


class Lease:
    __slots__ = ("id", "ttl", "expiry", "keys", "remaining_ttl", "checkpoint_at")

    def __init__(self, lease_id: int, ttl: int, remaining_ttl: int = 0) -> None:
        self.id = lease_id
        self.ttl = ttl
        self.expiry = FOREVER  # followers never expire leases; the leader sets real expiries
        self.keys: set[bytes] = set()
        self.remaining_ttl = remaining_ttl  # the last checkpoint's remaining TTL (0: none since the last renewal)
        self.checkpoint_at = FOREVER  # when the leader checkpoints it next

    @property
    def start_ttl(self) -> int:
        """What a new leader gives the lease: its checkpointed remaining TTL, else its whole TTL."""
        return self.remaining_ttl if self.remaining_ttl > 0 else self.ttl


def minimum_ttl(election_timeout_ms: int, heartbeat_ms: int) -> int:
    """etcd's floor for granted TTLs: 1.5 election timeouts in whole seconds, rounded up."""
    election_ticks = election_timeout_ms // heartbeat_ms
    return math.ceil((3 * election_ticks // 2) * heartbeat_ms / 1000)


class Lessor:
    def __init__(self, min_ttl: int, clock: Callable[[], float], checkpoint_interval: float | None = None) -> None:
        """``checkpoint_interval``: seconds between two checkpoints of a lease (None: no checkpoints)."""
        self.min_ttl = min_ttl
        self.clock = clock
        self.checkpoint_interval = checkpoint_interval
        self.leases: dict[int, Lease] = {}
        self._lease_of: dict[bytes, int] = {}
        self._queue: list[tuple[float, int]] = []
        self.primary = False  # True on the leader: expiries are real
        self.renewals = 0  # keep-alives answered with a TTL (etcd_debugging_lease_renewed_total)

    # -- applied from the log -------------------------------------------------------------------

    def grant(self, lease_id: int, ttl: int) -> Lease:
        if lease_id in self.leases:
            raise errors.ERR_LEASE_EXIST
        lease = Lease(lease_id, max(ttl, self.min_ttl))
        self.leases[lease_id] = lease
        if self.primary:
            self._set_expiry(lease, self.clock() + lease.ttl)
        return lease

    def restore(self, lease_id: int, ttl: int, remaining_ttl: int = 0) -> None:
        self.leases[lease_id] = Lease(lease_id, ttl, remaining_ttl)

    def checkpoint(self, lease_id: int, remaining_ttl: int) -> Lease | None:
        """Applied from the log: the lease's remaining TTL as its leader saw it (0 clears it); None for a lease
        revoked meanwhile."""
        lease = self.leases.get(lease_id)
        if lease is not None:
            lease.remaining_ttl = remaining_ttl
        return lease

    def revoke(self, lease_id: int) -> list[bytes]:
        """Forgets the lease; returns its keys in sorted order (the caller deletes them)."""
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            raise errors.ERR_LEASE_NOT_FOUND
        for key in lease.keys:
            self._lease_of.pop(key, None)
        return sorted(lease.keys)

    def exists(self, lease_id: int) -> bool:
        return lease_id in self.leases

    def on_put(self, key: bytes, lease_id: int) -> None:
        """``key`` now carries ``lease_id`` (0 = none): moves the attachment."""
        old = self._lease_of.get(key, 0)
        if old == lease_id:
            return
        if old:
            self._detach(key, old)
        if lease_id and lease_id in self.leases:
            self.leases[lease_id].keys.add(key)
            self._lease_of[key] = lease_id

    def on_delete(self, key: bytes) -> None:
        old = self._lease_of.get(key, 0)
        if old:
            self._detach(key, old)

    def _detach(self, key: bytes, lease_id: int) -> None:
        del self._lease_of[key]
        lease = self.leases.get(lease_id)
        if lease is not None:
            lease.keys.discard(key)

    # -- the leader's side ------------------------------------------------------------------

    def promote(self, extend: float) -> None:
        """This member leads now: every lease gets a fresh TTL plus ``extend`` seconds."""
        self.primary = True
        now = self.clock()
        self._queue = []
        for lease in self.leases.values():
            lease.expiry = now + lease.start_ttl + extend
            self._queue.append((lease.expiry, lease.id))
            self._schedule_checkpoint(lease, now)
        heapq.heapify(self._queue)

    def demote(self) -> None:
        """This member no longer leads: nothing expires here (the next leader promotes its own lessor)."""
        self.primary = False
        for lease in self.leases.values():
            lease.expiry = FOREVER
        self._queue = []

    def renew(self, lease_id: int) -> int:
        """Keep-alive: the granted TTL, or 0 for an unknown or already expired lease."""
        lease = self.leases.get(lease_id)
        now = self.clock()
        if lease is None or lease.expiry <= now:
            return 0
        lease.remaining_ttl = 0  # the caller cleared it through the log first (needs_checkpoint_reset)
        self.renewals += 1
        self._set_expiry(lease, now + lease.ttl)
        return lease.ttl

    def needs_checkpoint_reset(self, lease_id: int) -> bool:
        """Whether renewing the lease must first clear its checkpoint on every member (etcd proposes a
        checkpoint of 0 before it renews such a lease)."""
        lease = self.leases.get(lease_id)
        return self.checkpoint_interval is not None and lease is not None and lease.remaining_ttl > 0

    def due_checkpoints(self, limit: int) -> list[tuple[int, int]]:
        """On the leader: up to ``limit`` (lease id, remaining whole seconds, rounded up) for the leases whose
        checkpoint is due; each is scheduled again ``checkpoint_interval`` later. A lease whose remaining TTL
        is not below its TTL yet is skipped, as etcd skips it."""
        if not self.primary or self.checkpoint_interval is None:
            return []
        now, due = self.clock(), []
        for lease in self.leases.values():
            if lease.checkpoint_at > now:
                continue
            if len(due) == limit:
                break
            lease.checkpoint_at = FOREVER
            if lease.expiry <= now or lease.expiry == FOREVER:
                continue
            remaining = math.ceil(lease.expiry - now)
            if remaining < lease.ttl:
                due.append((lease.id, remaining))
            self._schedule_checkpoint(lease, now)
        return due

    def _schedule_checkpoint(self, lease: Lease, now: float) -> None:
        """The next checkpoint of ``lease``, if checkpoints are on and it lives longer than an interval."""
        interval = self.checkpoint_interval
        if interval is not None and lease.expiry != FOREVER and lease.expiry - now > interval:
            lease.checkpoint_at = now + interval
        else:
            lease.checkpoint_at = FOREVER

    def remaining(self, lease_id: int) -> int:
        """Whole seconds left (truncated); -1 for an unknown lease."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return -1
        if lease.expiry == FOREVER:
            return lease.ttl
        return max(int(lease.expiry - self.clock()), 0)

    def expired(self, limit: int) -> list[int]:
        """Up to ``limit`` leases whose time is up, earliest first. They stay due (and are listed again by
        the next call) until revoked or renewed."""
        now = self.clock()
        queue, due = self._queue, []
        while queue and queue[0][0] <= now and len(due) < limit:
            expiry, lease_id = heapq.heappop(queue)
            lease = self.leases.get(lease_id)
            if lease is not None and lease.expiry == expiry and (not due or due[-1] != (expiry, lease_id)):
                due.append((expiry, lease_id))
        for entry in due:
            heapq.heappush(queue, entry)
        return [lease_id for _, lease_id in due]

    def _set_expiry(self, lease: Lease, expiry: float) -> None:
        lease.expiry = expiry
        heapq.heappush(self._queue, (expiry, lease.id))
        if self.checkpoint_interval is not None:
            self._schedule_checkpoint(lease, self.clock())
        if len(self._queue) > 2 * len(self.leases) + 64:  # mostly stale entries: rebuild from the live leases
            self._queue = [(x.expiry, x.id) for x in self.leases.values() if x.expiry != FOREVER]
            heapq.heapify(self._queue)

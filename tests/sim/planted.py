"""Planted bugs: variants of the member shell or of the core that the simulation must catch.

Each is a context manager that patches one thing for the duration of a run (no Raft code is changed):

- ``follower_local_reads``: a member that is not the leader answers a linearizable Range from its own
  store instead of asking for a read index (caught by lincheck: a stale read);
- ``old_term_commit``: the leader commits an index as soon as a majority holds it, whatever the entry's
  term (Raft §5.4.2, figure 8; caught by the invariants: a committed entry lost or overwritten);
- ``forget_vote``: a member restarts with its term but without its vote (raftos's bug), so it may vote
  twice in one term (caught by election safety, Raft §5.2);
- ``ack_before_fsync``: a member writes each Ready at once but makes it durable only when the simulated
  fsync completes, and acts on the write without waiting for the fsync: it counts its own acknowledgement,
  sends its append acknowledgements and votes, applies what that commits and answers the clients. A crash
  returns its Raft storage and its backend to the last fsync (etcd-io/etcd#14370: a single member
  acknowledged writes it then lost). Caught by the invariants (a committed entry changed, Raft §5.4; two
  leaders in a term, §5.2) or by the durability one (thesis §3.8), or by the core refusing the state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from unittest import mock

from etcdx.raft import HardState, Role
from etcdx.raft import log as raft_log
from tests.sim.member import MemberShell


@contextmanager
def follower_local_reads() -> Iterator[None]:
    real_read = MemberShell.read

    def read(self, req, ctx, answer):
        if not req.serializable and self.node.raft.role is not Role.LEADER:
            answer(self.serve(req))
            return True
        return real_read(self, req, ctx, answer)

    with mock.patch.object(MemberShell, "read", read):
        yield


@contextmanager
def old_term_commit() -> Iterator[None]:
    def commit_by_counting(self, index, term):
        if index > self.committed:
            self.commit_to(index)
            return True
        return False

    with mock.patch.object(raft_log.RaftLog, "maybe_commit", commit_by_counting):
        yield


@contextmanager
def forget_vote() -> Iterator[None]:
    real_restart = MemberShell.crash_and_restart

    def restart_forgetting_vote(self):
        hs = self.storage.hard_state
        self.storage.hard_state = HardState(hs.term, 0, hs.commit)
        real_restart(self)

    with mock.patch.object(MemberShell, "crash_and_restart", restart_forgetting_vote):
        yield


@contextmanager
def ack_before_fsync() -> Iterator[None]:
    durable: dict[int, tuple] = {}
    """member id -> its Raft storage and backend image as of its last fsync."""

    def checkpoint(self):
        s = self.storage
        durable[self.id] = (s.hard_state, s.stored_snapshot(), list(s._entries), self.kv_bytes())

    def take_readies(self):
        out, states = [], []
        while self.node.has_ready():
            if self.id not in durable:
                checkpoint(self)
            rd = self.node.ready()
            out.extend(rd.messages)
            states.extend(rd.read_states)
            self.unpersisted.append(rd)  # the fsync the simulation will complete later
            out.extend(self.write_ready(rd))  # acknowledged before that fsync: the bug
            self.apply(rd)
        self.read_states.extend(states)
        return out, states

    def persist_through(self, number):
        while self.unpersisted and self.unpersisted[0].number <= number:
            self.unpersisted.popleft()
        checkpoint(self)
        return []

    def crash_and_restart(self):
        if self.id in durable:
            s = self.storage
            s.hard_state, s._snapshot, entries, image = durable[self.id]
            s._entries = list(entries)
            self.kv.abort()
            self.backend.restore(image)
        self.restart()

    with (
        mock.patch.object(MemberShell, "take_readies", take_readies),
        mock.patch.object(MemberShell, "persist_through", persist_through),
        mock.patch.object(MemberShell, "crash_and_restart", crash_and_restart),
    ):
        yield


PLANTED: dict[str, Callable[[], AbstractContextManager[None]]] = {
    "follower_local_reads": follower_local_reads,
    "old_term_commit": old_term_commit,
    "forget_vote": forget_vote,
    "ack_before_fsync": ack_before_fsync,
}

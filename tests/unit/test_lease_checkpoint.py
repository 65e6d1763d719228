"""Lease checkpoints (--experimental-enable-lease-checkpoint and -persist): the leader's schedule, a new
leader starting leases from their checkpointed remaining TTL, and the persisted rows surviving a reopen."""

from __future__ import annotations

import os

from etcdx.lease.lessor import Lessor
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from tests.support.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_leader_checkpoints_each_lease_every_interval():
    clock = Clock()
    lessor = Lessor(min_ttl=1, clock=clock, checkpoint_interval=10.0)
    lessor.promote(extend=0)
    lessor.grant(1, 60)
    lessor.grant(2, 5)  # shorter than an interval: never checkpointed
    clock.now = 9.0
    assert lessor.due_checkpoints(1000) == []
    clock.now = 10.5
    assert lessor.due_checkpoints(1000) == [(1, 50)]  # remaining whole seconds, rounded up
    assert lessor.due_checkpoints(1000) == []  # scheduled again an interval later
    clock.now = 20.5
    assert lessor.due_checkpoints(1000) == [(1, 40)]


def test_no_checkpoints_without_the_flag_or_on_a_follower():
    clock = Clock()
    off = Lessor(min_ttl=1, clock=clock)
    off.promote(extend=0)
    off.grant(1, 60)
    follower = Lessor(min_ttl=1, clock=clock, checkpoint_interval=1.0)
    follower.grant(1, 60)
    clock.now = 30.0
    assert off.due_checkpoints(1000) == [] and follower.due_checkpoints(1000) == []
    assert not off.needs_checkpoint_reset(1)


def test_a_new_leader_starts_a_lease_from_its_checkpoint_and_a_renewal_clears_it():
    clock = Clock()
    follower = Lessor(min_ttl=1, clock=clock, checkpoint_interval=10.0)
    follower.grant(1, 60)
    follower.checkpoint(1, 25)  # applied from the old leader's checkpoint
    clock.now = 100.0
    follower.promote(extend=0)
    assert follower.remaining(1) == 25  # not the whole 60
    assert follower.needs_checkpoint_reset(1)
    assert follower.renew(1) == 60
    assert follower.remaining(1) == 60
    follower.demote()
    follower.promote(extend=0)
    assert follower.remaining(1) == 60
    assert follower.checkpoint(99, 5) is None  # a lease revoked meanwhile


def test_persisted_checkpoints_survive_a_reopen_and_plain_ones_do_not(tmp_path):
    for persist, expected in ((True, 25), (False, 0)):
        store = Store("lmdb", os.path.join(tmp_path, f"db-{persist}"))
        try:
            store.applier.persist_checkpoints = persist
            store.apply(lease_grant=pb.LeaseGrantRequest(ID=7, TTL=60))
            checkpoint = pb.LeaseCheckpoint(ID=7, remaining_TTL=25)
            store.apply(lease_checkpoint=pb.LeaseCheckpointRequest(checkpoints=[checkpoint]))
            assert store.lessor.leases[7].remaining_ttl == 25
            store.reopen()
            assert store.lessor.leases[7].ttl == 60
            assert store.lessor.leases[7].remaining_ttl == expected
        finally:
            store.close()

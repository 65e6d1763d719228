"""Single-step membership changes: the checks a leader makes before proposing one, and the new
configuration once one is applied (etcd's ConfChange v1 with its server's --strict-reconfig-check).

A change takes effect when its entry is applied, one at a time: a leader refuses a second change while
one is in its log and not applied (Raft thesis §4.1, 'one at a time').
"""

from __future__ import annotations

from etcdx.raft import quorum
from etcdx.raft.errors import InvariantViolation
from etcdx.raft.messages import ConfChange, ConfChangeType, ConfState
from etcdx.raft.tracker import ProgressTracker

LEARNER_READY_FRACTION = 0.9
"""A learner is promoted only once its log holds this fraction of the leader's (etcd's isLearnerReady)."""


def refusal(cc: ConfChange, tracker: ProgressTracker, me: int, last_index: int) -> str | None:
    """Why a leader must not propose cc now, or None. The reasons mirror etcd's errors for member add,
    remove and promote (ErrIDExists, ErrIDNotFound, ErrUnhealthy, ErrLearnerNotReady)."""
    voters, learners = tracker.conf.voters, tracker.conf.learners
    member = cc.node_id
    if cc.type is ConfChangeType.UPDATE_NODE:
        return None if member in voters or member in learners else "member not found"
    active = {v for v in voters if v == me or tracker.progress[v].recent_active}
    if cc.type is ConfChangeType.ADD_NODE:
        if member in voters:
            return "member already exists"
        if member in learners:
            match = tracker.progress[member].match
            if match < last_index * LEARNER_READY_FRACTION:
                return "learner not ready to be promoted"
            if tracker.progress[member].recent_active:
                active = active | {member}  # a learner in sync counts toward the quorum it is to join
        if voters == {me}:
            return None  # etcd's exception: a second voter added to a lone one (it waits for the new member)
        if len(active) < quorum.quorum_size(range(len(voters) + 1)):
            return "unhealthy cluster: adding a voter would leave too few active voters for a quorum"
        return None
    if cc.type is ConfChangeType.ADD_LEARNER:
        if member in voters or member in learners:
            return "member already exists"
        return None
    if member not in voters and member not in learners:
        return "member not found"
    if member in voters:
        if voters == {member}:
            return "cannot remove the last voter"
        remaining = voters - {member}
        if len(active - {member}) < quorum.quorum_size(remaining):
            return "unhealthy cluster: removing this voter would leave too few active voters for a quorum"
    return None


def apply(conf: ConfState, cc: ConfChange) -> ConfState:
    """The configuration after cc (the same for UPDATE_NODE). Adding a voter that is a learner promotes it;
    adding a learner that is a voter demotes it (refused at proposal time, applied as etcd-io/raft does if it
    is in the log)."""
    if cc.type is ConfChangeType.UPDATE_NODE:
        return conf
    voters, learners = set(conf.voters), set(conf.learners)
    member = cc.node_id
    if cc.type is ConfChangeType.ADD_NODE:
        learners.discard(member)
        voters.add(member)
    elif cc.type is ConfChangeType.ADD_LEARNER:
        voters.discard(member)
        learners.add(member)
    else:
        voters.discard(member)
        learners.discard(member)
    if not voters:
        raise InvariantViolation(f"{cc} would remove every voter")
    return ConfState(frozenset(voters), frozenset(learners))

"""The leader's (and candidate's) view of the membership: per-member Progress and the votes of an election."""

from __future__ import annotations

from etcdx.raft import quorum
from etcdx.raft.messages import ConfState
from etcdx.raft.progress import Progress


class ProgressTracker:
    """Invariant: progress has exactly one entry per member of conf (voters and learners)."""

    def __init__(self, max_inflight: int, max_inflight_bytes: int | None) -> None:
        self.conf = ConfState()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes

    def new_progress(self, next_index: int, learner: bool) -> Progress:
        return Progress(next_index, self.max_inflight, self.max_inflight_bytes, learner)

    def set_conf(self, conf: ConfState, next_index: int) -> None:
        """Adopt conf; members kept keep their progress (with the learner flag updated), new ones start probing."""
        kept = {}
        for member in conf.voters | conf.learners:
            pr = self.progress.get(member)
            if pr is None:
                pr = self.new_progress(next_index, member in conf.learners)
            pr.learner = member in conf.learners
            kept[member] = pr
        self.progress = kept
        self.conf = conf

    def is_voter(self, member: int) -> bool:
        return member in self.conf.voters

    def committed(self) -> int:
        voters = self.conf.voters
        if len(voters) == 1:  # one voter (a single member: every write comes here): its match is the quorum's
            (voter,) = voters
            pr = self.progress.get(voter)
            return pr.match if pr is not None else 0
        return quorum.committed_index(voters, {m: p.match for m, p in self.progress.items()})

    def record_vote(self, member: int, granted: bool) -> None:
        self.votes.setdefault(member, granted)

    def tally(self) -> quorum.VoteResult:
        return quorum.vote_result(self.conf.voters, self.votes)

    def quorum_active(self, me: int) -> bool:
        """Whether a majority of voters (counting this member) were heard from recently (check-quorum)."""
        active = {m: True for m, p in self.progress.items() if m == me or p.recent_active}
        return quorum.vote_result(self.conf.voters, {v: active.get(v, False) for v in self.conf.voters}) is (
            quorum.VoteResult.WON
        )

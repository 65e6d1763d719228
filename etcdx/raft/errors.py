"""Errors the Raft core raises or returns to its shell."""


class RaftError(Exception):
    """Base of the core's errors."""


class CompactedError(RaftError):
    """The requested index is at or below the storage's snapshot: the entries are gone."""


class UnavailableError(RaftError):
    """The requested index is above the storage's last index."""


class SnapshotTemporarilyUnavailableError(RaftError):
    """The storage cannot produce a snapshot right now; the leader retries later."""


class ProposalDroppedError(RaftError):
    """The proposal was not appended: no leader is known, a leader transfer is running, this member is not in
    the configuration, or (for a conf change) another one is still pending. The caller retries or gives up."""


class InvariantViolation(RaftError):
    """The core reached a state the protocol makes impossible (a bug in the core or a broken storage)."""

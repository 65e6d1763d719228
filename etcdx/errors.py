"""etcd's client-visible errors: exact message text and gRPC status code.

clientv3 maps a received status back to its typed error by the message text, so every string here
is byte-identical to etcd's (shared/reference/etcd-api.md, section 2). Any layer may raise these;
the gRPC layer turns them into grpc-status / grpc-message trailers unchanged.
"""

from __future__ import annotations

import enum


class StatusCode(enum.IntEnum):
    """gRPC status codes (the numbers travel in the grpc-status trailer)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class EtcdError(Exception):
    """An error a client sees as a gRPC status: ``code`` and ``message`` (etcd's exact text).

    Each ERR_* below is a subclass with its code and message, not a shared instance: ``raise ERR_X``
    makes a fresh instance every time. (A shared instance would keep the traceback of every raise, and
    with it the locals of every frame it passed through: memory that grows with each failed request.)
    Code that only needs the status may read ``code`` and ``message`` off the class itself.
    """

    code: StatusCode = StatusCode.UNKNOWN
    message: str = ""

    def __init__(self, code: StatusCode | None = None, message: str | None = None) -> None:
        if code is not None:
            self.code = code
        if message is not None:
            self.message = message
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"EtcdError({self.code.name}, {self.message!r})"


def etcd_error(code: StatusCode, message: str) -> type[EtcdError]:
    """A subclass of EtcdError for one error: raise it (the class) to raise a fresh instance."""
    return type("EtcdError", (EtcdError,), {"code": code, "message": message})


_e = etcd_error
C = StatusCode

ERR_EMPTY_KEY = _e(C.INVALID_ARGUMENT, "etcdserver: key is not provided")
ERR_KEY_NOT_FOUND = _e(C.INVALID_ARGUMENT, "etcdserver: key not found")
ERR_VALUE_PROVIDED = _e(C.INVALID_ARGUMENT, "etcdserver: value is provided")
ERR_LEASE_PROVIDED = _e(C.INVALID_ARGUMENT, "etcdserver: lease is provided")
ERR_TOO_MANY_OPS = _e(C.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
ERR_DUPLICATE_KEY = _e(C.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
ERR_COMPACTED = _e(C.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
ERR_FUTURE_REV = _e(C.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
ERR_NO_SPACE = _e(C.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
ERR_LEASE_NOT_FOUND = _e(C.NOT_FOUND, "etcdserver: requested lease not found")
ERR_LEASE_EXIST = _e(C.FAILED_PRECONDITION, "etcdserver: lease already exists")
ERR_LEASE_TTL_TOO_LARGE = _e(C.OUT_OF_RANGE, "etcdserver: too large lease TTL")
ERR_WATCH_CANCELED = _e(C.CANCELLED, "etcdserver: watch canceled")
ERR_REQUEST_TOO_LARGE = _e(C.INVALID_ARGUMENT, "etcdserver: request is too large")
ERR_TOO_MANY_REQUESTS = _e(C.UNKNOWN, "etcdserver: too many requests")
ERR_NO_LEADER = _e(C.UNAVAILABLE, "etcdserver: no leader")
ERR_NOT_LEADER = _e(C.FAILED_PRECONDITION, "etcdserver: not leader")
ERR_LEADER_CHANGED = _e(C.UNAVAILABLE, "etcdserver: leader changed")
ERR_STOPPED = _e(C.UNAVAILABLE, "etcdserver: server stopped")
ERR_TIMEOUT = _e(C.UNAVAILABLE, "etcdserver: request timed out")
ERR_TIMEOUT_DUE_TO_LEADER_FAIL = _e(
    C.UNAVAILABLE, "etcdserver: request timed out, possibly due to previous leader failure"
)
ERR_TIMEOUT_DUE_TO_CONNECTION_LOST = _e(C.UNAVAILABLE, "etcdserver: request timed out, possibly due to connection lost")
ERR_TIMEOUT_LEADER_TRANSFER = _e(C.UNAVAILABLE, "etcdserver: request timed out, leader transfer took too long")
ERR_TIMEOUT_WAIT_APPLIED_INDEX = _e(
    C.UNAVAILABLE, "etcdserver: request timed out, waiting for the applied index took too long"
)
ERR_BAD_LEADER_TRANSFEREE = _e(C.FAILED_PRECONDITION, "etcdserver: bad leader transferee")
# etcd 3.5.1 passes these raft and context errors to the client as they are (code Unknown): a proposal made
# while the member knows no leader waits out the request timeout; one the leader drops (a transfer is on).
ERR_PROPOSAL_CONTEXT_DEADLINE = _e(C.UNKNOWN, "context deadline exceeded")
ERR_PROPOSAL_DROPPED = _e(C.UNKNOWN, "raft proposal dropped")
ERR_CORRUPT = _e(C.DATA_LOSS, "etcdserver: corrupt cluster")
ERR_MEMBER_EXIST = _e(C.FAILED_PRECONDITION, "etcdserver: member ID already exist")
ERR_PEER_URL_EXIST = _e(C.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")
ERR_MEMBER_NOT_ENOUGH_STARTED = _e(C.UNKNOWN, "etcdserver: re-configuration failed due to not enough started members")
ERR_MEMBER_BAD_URLS = _e(C.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid")
ERR_MEMBER_NOT_FOUND = _e(C.NOT_FOUND, "etcdserver: member not found")
ERR_MEMBER_NOT_LEARNER = _e(C.FAILED_PRECONDITION, "etcdserver: can only promote a learner member")
ERR_LEARNER_NOT_READY = _e(
    C.FAILED_PRECONDITION, "etcdserver: can only promote a learner member which is in sync with leader"
)
ERR_TOO_MANY_LEARNERS = _e(C.FAILED_PRECONDITION, "etcdserver: too many learner members in cluster")
ERR_NOT_SUPPORTED_FOR_LEARNER = _e(C.UNAVAILABLE, "etcdserver: rpc not supported for learner")
ERR_UNHEALTHY = _e(C.UNAVAILABLE, "etcdserver: unhealthy cluster")
ERR_PERMISSION_DENIED = _e(C.PERMISSION_DENIED, "etcdserver: permission denied")
ERR_INVALID_AUTH_TOKEN = _e(C.UNAUTHENTICATED, "etcdserver: invalid auth token")
ERR_USER_EMPTY = _e(C.INVALID_ARGUMENT, "etcdserver: user name is empty")
ERR_ROOT_USER_NOT_EXIST = _e(C.FAILED_PRECONDITION, "etcdserver: root user does not exist")
ERR_ROOT_ROLE_NOT_EXIST = _e(C.FAILED_PRECONDITION, "etcdserver: root user does not have root role")
ERR_USER_ALREADY_EXIST = _e(C.FAILED_PRECONDITION, "etcdserver: user name already exists")
ERR_USER_NOT_FOUND = _e(C.FAILED_PRECONDITION, "etcdserver: user name not found")
ERR_ROLE_ALREADY_EXIST = _e(C.FAILED_PRECONDITION, "etcdserver: role name already exists")
ERR_ROLE_NOT_FOUND = _e(C.FAILED_PRECONDITION, "etcdserver: role name not found")
ERR_ROLE_EMPTY = _e(C.INVALID_ARGUMENT, "etcdserver: role name is empty")
ERR_AUTH_FAILED = _e(C.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password")
ERR_PERMISSION_NOT_GIVEN = _e(C.INVALID_ARGUMENT, "etcdserver: permission not given")
ERR_ROLE_NOT_GRANTED = _e(C.FAILED_PRECONDITION, "etcdserver: role is not granted to the user")
ERR_PERMISSION_NOT_GRANTED = _e(C.FAILED_PRECONDITION, "etcdserver: permission is not granted to the role")
ERR_AUTH_NOT_ENABLED = _e(C.FAILED_PRECONDITION, "etcdserver: authentication is not enabled")
ERR_INVALID_AUTH_MGMT = _e(C.INVALID_ARGUMENT, "etcdserver: invalid auth management")
ERR_AUTH_OLD_REVISION = _e(C.INVALID_ARGUMENT, "etcdserver: revision of auth store is old")
# etcd has no gRPC mapping for these two: clients see code 2 with the auth package's own text.
ERR_NO_PASSWORD_USER = _e(C.UNKNOWN, "auth: authentication failed, password was given for no password user")
ERR_VERIFY_ONLY = _e(C.UNKNOWN, "auth: token signing attempted with verify-only key")


def message_too_large(got: int, limit: int) -> EtcdError:
    """grpc-go's text when a received message exceeds the server's receive limit."""
    return EtcdError(C.RESOURCE_EXHAUSTED, f"grpc: received message larger than max ({got} vs. {limit})")

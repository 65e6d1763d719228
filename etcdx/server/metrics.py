"""Prometheus series with etcd's names, for what etcdx has so far (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from etcdx.version import CLUSTER_VERSION, SERVER_VERSION

HAS_LEADER = Gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.")
LEADER_CHANGES = Counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen.")
IS_LEADER = Gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.")
SERVER_VERSION_INFO = Gauge(
    "etcd_server_version",
    "Which version is running. 1 for 'server_version' label with current version.",
    ["server_version"],
)
CLUSTER_VERSION_INFO = Gauge(
    "etcd_cluster_version",
    "Which version is running. 1 for 'cluster_version' label with current cluster version",
    ["cluster_version"],
)
SERVER_ID = Gauge(
    "etcd_server_id",
    "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
    ["server_id"],
)
# Gauges, as etcd's are: the Raft commit and apply indexes, read when /metrics is scraped (no work per apply).
PROPOSALS_COMMITTED = Gauge(
    "etcd_server_proposals_committed_total", "The total number of consensus proposals committed."
)
PROPOSALS_APPLIED = Gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.")
PROPOSALS_PENDING = Gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit.")
PROPOSALS_FAILED = Counter("etcd_server_proposals_failed", "The total number of failed proposals seen.")
CURRENT_REVISION = Gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.")
QUOTA_BACKEND_BYTES = Gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.")
DB_TOTAL_SIZE = Gauge(
    "etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes."
)


def publish_identity(member_id: int) -> None:
    """Sets the series that describe this member; called once it has started."""
    SERVER_VERSION_INFO.labels(server_version=SERVER_VERSION).set(1)
    CLUSTER_VERSION_INFO.labels(cluster_version=CLUSTER_VERSION).set(1)
    SERVER_ID.labels(server_id=f"{member_id:x}").set(1)

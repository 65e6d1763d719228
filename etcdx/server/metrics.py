"""etcd 3.5's Prometheus series that change on events, with etcd's names, types, labels, help texts and buckets.

Everything here lives in ``REGISTRY`` (not prometheus_client's default one, whose python_* series etcd does not
have). Series that describe state (revisions, sizes, watchers, peers, gRPC call counts...) are not kept here:
metrics_scrape.py reads them from the running member when /metrics is scraped, so the request path does no
metrics work for them. The series here are touched once per event (a WAL fsync, a backend commit, a leader
change, a lease expiry, ...), never per client request.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=False)
ProcessCollector(registry=REGISTRY)  # process_* (CPU, memory, file descriptors), as Go's client exports them


def _buckets(start: float, factor: float, count: int) -> list[float]:
    """Prometheus' ExponentialBuckets, as etcd declares its histograms."""
    return [start * factor**i for i in range(count)]


def _histogram(name: str, documentation: str, start: float, factor: float, count: int) -> Histogram:
    return Histogram(name, documentation, buckets=_buckets(start, factor, count), registry=REGISTRY)


def _counter(name: str, documentation: str) -> Counter:
    """A counter named as etcd names it (with its "_total", which prometheus_client keeps off the family)."""
    return Counter(name, documentation, registry=REGISTRY)


# -- disk ----------------------------------------------------------------------------------------------------
WAL_FSYNC_SECONDS = _histogram(
    "etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.", 0.001, 2, 14
)
BACKEND_COMMIT_SECONDS = _histogram(
    "etcd_disk_backend_commit_duration_seconds", "The latency distributions of commit called by backend.", 0.001, 2, 14
)
DEFRAG_SECONDS = _histogram(
    "etcd_disk_backend_defrag_duration_seconds", "The latency distribution of backend defragmentation.", 0.1, 2, 13
)
BACKEND_SNAPSHOT_SECONDS = _histogram(
    "etcd_disk_backend_snapshot_duration_seconds", "The latency distribution of backend snapshots.", 0.01, 2, 17
)
SNAP_DB_FSYNC_SECONDS = _histogram(
    "etcd_snap_db_fsync_duration_seconds", "The latency distributions of fsyncing .snap.db file", 0.001, 2, 14
)
SNAP_DB_SAVE_SECONDS = _histogram(
    "etcd_snap_db_save_total_duration_seconds", "The total latency distributions of v3 snapshot save", 0.1, 2, 10
)
SNAP_FSYNC_SECONDS = _histogram(
    "etcd_snap_fsync_duration_seconds", "The latency distributions of fsync called by snap.", 0.001, 2, 14
)
SNAP_SAVE_MARSHALLING_SECONDS = _histogram(
    "etcd_debugging_snap_save_marshalling_duration_seconds",
    "The marshalling cost distributions of save called by snapshot.",
    0.001,
    2,
    14,
)
SNAP_SAVE_TOTAL_SECONDS = _histogram(
    "etcd_debugging_snap_save_total_duration_seconds",
    "The total latency distributions of save called by snapshot.",
    0.001,
    2,
    14,
)

# -- mvcc ----------------------------------------------------------------------------------------------------
HASH_SECONDS = _histogram(
    "etcd_mvcc_hash_duration_seconds", "The latency distribution of storage hash operation.", 0.01, 2, 15
)
HASH_REV_SECONDS = _histogram(
    "etcd_mvcc_hash_rev_duration_seconds",
    "The latency distribution of storage hash by revision operation.",
    0.01,
    2,
    15,
)
DB_COMPACTION_PAUSE_MS = _histogram(
    "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
    "Bucketed histogram of db compaction pause duration.",
    1,
    2,
    13,
)
DB_COMPACTION_TOTAL_MS = _histogram(
    "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
    "Bucketed histogram of db compaction total duration.",
    100,
    2,
    14,
)
INDEX_COMPACTION_PAUSE_MS = _histogram(
    "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
    "Bucketed histogram of index compaction pause duration.",
    0.5,
    2,
    14,
)
DB_COMPACTION_LAST = Gauge(
    "etcd_debugging_mvcc_db_compaction_last",
    "The unix time of the last db compaction. Resets to 0 on start.",
    registry=REGISTRY,
)

# -- leases --------------------------------------------------------------------------------------------------
LEASE_TTL = _histogram("etcd_debugging_lease_ttl_total", "Bucketed histogram of lease TTLs.", 1, 2, 24)
LEASE_EXPIRED = _counter("etcd_debugging_server_lease_expired_total", "The total number of expired leases.")

# -- server --------------------------------------------------------------------------------------------------
HAS_LEADER = Gauge(
    "etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", registry=REGISTRY
)
IS_LEADER = Gauge(
    "etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", registry=REGISTRY
)
LEADER_CHANGES = _counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen.")
PROPOSALS_FAILED = _counter("etcd_server_proposals_failed_total", "The total number of failed proposals seen.")
HEARTBEAT_SEND_FAILURES = _counter(
    "etcd_server_heartbeat_send_failures_total",
    "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
)
SLOW_APPLY = _counter(
    "etcd_server_slow_apply_total", "The total number of slow apply requests (likely overloaded from slow disk)."
)
SLOW_READ_INDEXES = _counter(
    "etcd_server_slow_read_indexes_total",
    "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
)
READ_INDEXES_FAILED = _counter("etcd_server_read_indexes_failed_total", "The total number of failed read indexes seen.")
LEARNER_PROMOTE_SUCCESSES = _counter(
    "etcd_server_learner_promote_successes",
    "The total number of successful learner promotions while this member is leader.",
)
HEALTH_SUCCESS = _counter("etcd_server_health_success", "The total number of successful health checks")
HEALTH_FAILURES = _counter("etcd_server_health_failures", "The total number of failed health checks")

# -- the /metrics handler itself (Go's promhttp series) -------------------------------------------------------
SCRAPES = Counter(
    "promhttp_metric_handler_requests", "Total number of scrapes by HTTP status code.", ["code"], registry=REGISTRY
)
for _code in ("200", "500", "503"):
    SCRAPES.labels(code=_code)
SCRAPES_IN_FLIGHT = Gauge(
    "promhttp_metric_handler_requests_in_flight", "Current number of scrapes being served.", registry=REGISTRY
)

# -- the v2 keys API (v2 requests are counted one by one, as etcd's v2http does) -------------------------------
V2_RECEIVED = Counter(
    "etcd_http_received",
    "Counter of requests received into the system (successfully parsed and authd).",
    ["method"],
    registry=REGISTRY,
)
V2_FAILED = Counter(
    "etcd_http_failed",
    "Counter of handle failures of requests (non-watches), by method (GET/PUT etc.) and code (400, 500 etc.).",
    ["method", "code"],
    registry=REGISTRY,
)
V2_SUCCESS_SECONDS = Histogram(
    "etcd_http_successful_duration_seconds",
    "Bucketed histogram of processing time (s) of successfully handled requests (non-watches), by method "
    "(GET/PUT etc.).",
    ["method"],
    buckets=_buckets(0.0005, 2, 13),
    registry=REGISTRY,
)

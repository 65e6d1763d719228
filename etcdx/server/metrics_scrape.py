"""The series etcd 3.5 exports that describe a member's state, read from the running member when /metrics is
scraped (a prometheus_client collector): nothing is counted for them on the request path.

Sources: the member (revisions, indexes, leadership, sizes, quota), its watch hub, lessor, auth store, v2 store,
peer transport and WAL, the request kinds its applier counted, the gRPC call counts of net/grpc_metrics.py,
and the process's file descriptors.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from etcdx.net.grpc_metrics import COUNTS
from etcdx.server import metrics
from etcdx.server.metrics_grpc import grpc_families
from etcdx.version import CLUSTER_VERSION, SERVER_VERSION

if TYPE_CHECKING:
    from etcdx.server.server import EtcdServer

_V2_WRITE_ACTIONS = (
    ("set", "sets_success"),
    ("update", "update_success"),
    ("create", "create_success"),
    ("delete", "delete_success"),
    ("compareAndSwap", "compare_and_swap_success"),
    ("compareAndDelete", "compare_and_delete_success"),
)


def _gauge(name: str, documentation: str, value: float, labels: dict[str, str] | None = None) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=list(labels) if labels else None)
    if labels:
        family.add_metric(list(labels.values()), value)
    else:
        family.add_metric([], value)
    return family


def _counter(name: str, documentation: str, value: float) -> Metric:
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


class MemberCollector:
    """Reads ``server`` at each scrape; ``pending`` counts the proposals waiting to be applied."""

    def __init__(self, server: EtcdServer, pending: Callable[[], int]) -> None:
        self._server = server
        self._pending = pending

    def collect(self) -> Iterator[Metric]:
        server = self._server
        if server.store is None:  # not started yet
            return
        yield from self._server_families(server)
        yield from self._mvcc_families(server)
        yield from self._lease_families(server)
        yield from self._network_families(server)
        yield from self._v2_families(server)
        yield from grpc_families(COUNTS)
        yield from _process_families()
        yield from _proxy_families()

    def _server_families(self, server: EtcdServer) -> Iterator[Metric]:
        yield _gauge(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
            1,
            {"server_id": f"{server.member_id:x}"},
        )
        yield _gauge(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            1,
            {"server_version": SERVER_VERSION},
        )
        yield _gauge(
            "etcd_cluster_version",
            "Which version is running. 1 for 'cluster_version' label with current cluster version",
            1,
            {"cluster_version": CLUSTER_VERSION},
        )
        yield _gauge(
            "etcd_server_go_version",
            "Which Go version server is running with. 1 for 'server_go_version' label with current version.",
            1,
            {"server_go_version": f"python{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"},
        )
        yield _gauge(
            "etcd_server_is_learner",
            "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            1 if server.is_learner else 0,
        )
        yield _gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            server.committed_index,
        )
        yield _gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            server.applied_index,
        )
        yield _gauge(
            "etcd_server_proposals_pending", "The current number of pending proposals to commit.", self._pending()
        )
        yield _gauge(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes.",
            server.settings.quota_backend_bytes,
        )
        yield _gauge(
            "etcd_server_snapshot_apply_in_progress_total",
            "1 if the server is applying the incoming snapshot. 0 if none.",
            0,  # not tracked: a snapshot is installed between two turns of the event loop
        )
        yield _gauge(
            "etcd_debugging_auth_revision",
            "The current revision of auth store.",
            server.auth.revision if server.auth is not None else 0,
        )
        yield _gauge(
            "etcd_disk_wal_write_bytes_total",
            "Total number of bytes written in WAL.",
            server.wal.written_bytes if server.wal is not None else 0,
        )
        yield _gauge(
            "etcd_disk_defrag_inflight",
            "Whether or not defrag is active on the member. 1 means active, 0 means not.",
            1 if server.defragmenting else 0,
        )

    def _mvcc_families(self, server: EtcdServer) -> Iterator[Metric]:
        store = server.store
        kinds = server.applier.applied_kinds
        yield _gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.", store.current_revision)
        yield _gauge(
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store.",
            max(store.compact_revision, 0),
        )
        yield _gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", len(store.index))
        yield _counter(
            "etcd_debugging_mvcc_db_compaction_keys_total", "Total number of db keys compacted.", store.compacted_keys
        )
        hub = server.watch_hub
        watchers = len(hub) if hub is not None else 0
        unsynced = hub.unsynced_count if hub is not None else 0
        yield _gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.", watchers)
        yield _gauge("etcd_debugging_mvcc_slow_watcher_total", "Total number of unsynced slow watchers.", unsynced)
        yield _gauge(
            "etcd_debugging_mvcc_watch_stream_total", "Total number of watch streams.", COUNTS.open_calls(_WATCH)
        )
        # Not tracked (zero): counting them would put work on the write and watch paths.
        yield _gauge("etcd_debugging_mvcc_pending_events_total", "Total number of pending events to be sent.", 0)
        yield _counter("etcd_debugging_mvcc_events_total", "Total number of events sent by this member.", 0)
        yield _gauge(
            "etcd_debugging_mvcc_total_put_size_in_bytes", "The total size of put kv pairs seen by this member.", 0
        )
        ranges = COUNTS.started_calls(_RANGE)
        yield _counter("etcd_mvcc_range_total", "Total number of ranges seen by this member.", ranges)
        yield _counter("etcd_debugging_mvcc_range_total", "Total number of ranges seen by this member.", ranges)
        yield _counter("etcd_mvcc_put_total", "Total number of puts seen by this member.", kinds.get("put", 0))
        yield _counter(
            "etcd_mvcc_delete_total", "Total number of deletes seen by this member.", kinds.get("delete_range", 0)
        )
        yield _counter("etcd_mvcc_txn_total", "Total number of txns seen by this member.", kinds.get("txn", 0))
        yield _gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            server.db_size_bytes,
        )
        yield _gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            server.db_size_in_use_bytes,
        )
        yield _gauge(
            "etcd_mvcc_db_open_read_transactions",
            "The number of currently open read transactions",
            0,  # not tracked: LMDB read transactions are short and never held across awaits
        )

    def _lease_families(self, server: EtcdServer) -> Iterator[Metric]:
        kinds = server.applier.applied_kinds
        yield _counter(
            "etcd_debugging_lease_granted_total", "The total number of granted leases.", kinds.get("lease_grant", 0)
        )
        yield _counter(
            "etcd_debugging_lease_revoked_total", "The total number of revoked leases.", kinds.get("lease_revoke", 0)
        )
        yield _counter(
            "etcd_debugging_lease_renewed_total",
            "The number of renewed leases seen by the leader.",
            server.lessor.renewals,
        )

    def _network_families(self, server: EtcdServer) -> Iterator[Metric]:
        yield _counter(
            "etcd_network_client_grpc_received_bytes_total",
            "The total number of bytes received from grpc clients.",
            COUNTS.received_bytes,
        )
        yield _counter(
            "etcd_network_client_grpc_sent_bytes_total",
            "The total number of bytes sent to grpc clients.",
            COUNTS.sent_bytes,
        )
        transport = server.transport
        if transport is None:
            return
        local = f"{server.member_id:x}"
        active = GaugeMetricFamily(
            "etcd_network_active_peers", "The current number of active peer connections.", labels=["Local", "Remote"]
        )
        disconnected = CounterMetricFamily(
            "etcd_network_disconnected_peers_total",
            "The total number of disconnected peers.",
            labels=["Local", "Remote"],
        )
        sent = CounterMetricFamily(
            "etcd_network_peer_sent_bytes_total", "The total number of bytes sent to peers.", labels=["To"]
        )
        received = CounterMetricFamily(
            "etcd_network_peer_received_bytes_total", "The total number of bytes received from peers.", labels=["From"]
        )
        for peer_id, stats in transport.peer_stats().items():
            remote = f"{peer_id:x}"
            if stats.active:
                active.add_metric([local, remote], 1)
            if stats.disconnects:
                disconnected.add_metric([local, remote], stats.disconnects)
            if stats.sent_bytes:
                sent.add_metric([remote], stats.sent_bytes)
        for peer_id, count in transport.received_bytes.items():
            received.add_metric([f"{peer_id:x}"], count)
        yield from (active, disconnected, sent, received)

    def _v2_families(self, server: EtcdServer) -> Iterator[Metric]:
        v2 = server.v2store
        stats = v2.stats if v2 is not None else None
        reads = CounterMetricFamily(
            "etcd_debugging_store_reads_total",
            "Total number of reads action by (get/getRecursive), local to this member.",
            labels=["action"],
        )
        writes = CounterMetricFamily(
            "etcd_debugging_store_writes_total",
            "Total number of writes (e.g. set/compareAndDelete) seen by this member.",
            labels=["action"],
        )
        if stats is not None:
            if stats.gets_success:
                reads.add_metric(["get"], stats.gets_success)
            for action, field in _V2_WRITE_ACTIONS:
                if value := getattr(stats, field):
                    writes.add_metric([action], value)
        yield from (reads, writes)
        yield _counter(
            "etcd_debugging_store_expires_total",
            "Total number of expired keys.",
            stats.expire_count if stats is not None else 0,
        )
        yield _counter(
            "etcd_debugging_store_watch_requests_total",
            "Total number of incoming watch requests (new or reestablished).",
            0,  # not tracked
        )
        yield _gauge(
            "etcd_debugging_store_watchers",
            "Count of currently active watchers.",
            v2.hub.count if v2 is not None else 0,
        )


_RANGE = "/etcdserverpb.KV/Range"
_WATCH = "/etcdserverpb.Watch/Watch"


def _process_families() -> Iterator[Metric]:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield _gauge("os_fd_limit", "The file descriptor limit.", soft)
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        used = 0
    yield _gauge("os_fd_used", "The number of used file descriptors.", used)


def _proxy_families() -> Iterator[Metric]:
    """etcd's server registers its gRPC proxy's series too (all zero outside a proxy); so does etcdx."""
    yield _gauge("etcd_grpc_proxy_cache_hits_total", "Total number of cache hits", 0)
    yield _gauge("etcd_grpc_proxy_cache_keys_total", "Total number of keys/ranges cached", 0)
    yield _gauge("etcd_grpc_proxy_cache_misses_total", "Total number of cache misses", 0)
    yield _counter("etcd_grpc_proxy_events_coalescing_total", "Total number of events coalescing", 0)
    yield _gauge("etcd_grpc_proxy_watchers_coalescing_total", "Total number of current watchers coalescing", 0)


def watch(server: EtcdServer, pending: Callable[[], int]) -> None:
    """Makes /metrics read ``server`` (the last member started in this process owns the series)."""
    global _collector
    if _collector is not None:
        metrics.REGISTRY.unregister(_collector)
    _collector = MemberCollector(server, pending)
    metrics.REGISTRY.register(_collector)


_collector: MemberCollector | None = None

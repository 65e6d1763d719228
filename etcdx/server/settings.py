"""What the server core needs to know, independent of how it was configured (flags, env, YAML)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSettings:
    """Every field is set from the Config (etcdx/cli/main.py), which holds etcd's defaults: none here."""

    name: str
    data_dir: str
    wal_dir: str
    member_id: int
    cluster_id: int
    peer_urls: tuple[str, ...]
    # The initial cluster, this member included: (member id, name, peer URLs), by member id.
    initial_members: tuple[tuple[int, str, tuple[str, ...]], ...]
    client_urls: tuple[str, ...]
    max_request_bytes: int
    max_txn_ops: int
    quota_backend_bytes: int
    backend_map_size: int
    watch_progress_notify_interval: float
    heartbeat_interval_ms: int
    election_timeout_ms: int
    snapshot_count: int  # applied entries between two releases of the WAL
    max_wals: int  # WAL segments to keep at least (0: all)
    snapshot_catchup_entries: int  # entries kept below the release point for followers
    wal_segment_bytes: int
    backend_batch_interval: float  # seconds the batch transaction stays open after its first change
    backend_batch_limit: int  # applied entries that make the batch transaction commit at once
    auth_token: str  # --auth-token as given ("simple", "jwt,sign-method=...,...")
    auth_token_ttl: int  # seconds a simple token lives after its last use
    bcrypt_cost: int
    enable_v2: bool = False  # serve the v2 API (--enable-v2); its store exists only then
    enable_grpc_gateway: bool = True  # serve the /v3 JSON gateway (--enable-grpc-gateway)
    cors: frozenset[str] = frozenset(["*"])  # --cors: origins allowed (empty or "*": all)
    host_whitelist: frozenset[str] = frozenset(["*"])  # --host-whitelist: Host names allowed (empty or "*": all)
    initial_corrupt_check: bool = False  # --experimental-initial-corrupt-check
    corrupt_check_time: float = 0.0  # --experimental-corrupt-check-time in seconds (0: no periodic check)
    force_new_cluster: bool = False  # --force-new-cluster: restart as the only member of its cluster, data kept
    initial_cluster_state: str = "new"  # "existing": an empty data dir joins the running cluster of initial_members
    strict_reconfig_check: bool = True  # refuse a membership change that could cost the quorum
    auto_compaction_mode: str = "periodic"  # --auto-compaction-mode: "periodic" or "revision"
    auto_compaction_retention: float = 0.0  # seconds (periodic) or revisions (revision) kept; 0: no auto compaction
    compaction_batch_limit: int = 1000  # keys a compaction deletes per backend transaction (<= 0: all at once)
    warning_apply_duration: float = 0.1  # seconds an applied request may take before it is logged as slow
    initial_election_tick_advance: bool = True  # a member with peers fast-forwards its first election timeout
    pre_vote: bool = True  # the raft core's pre-vote phase
    unsafe_no_fsync: bool = False  # neither the WAL nor the backend fsyncs (a crash may lose acknowledged writes)
    lease_checkpoint: bool = False  # the leader checkpoints remaining TTLs through the log
    lease_checkpoint_persist: bool = False  # ... and they are kept in the backend (a restart keeps them)
    lease_checkpoint_interval: float = 300.0  # seconds between two checkpoints of a lease (etcd's 5 minutes)
    bootstrap_defrag_threshold_bytes: int = 0  # free backend bytes that make the start defragment (0: never)
    revision_compaction_interval: float = 300.0  # seconds between two revision-mode auto compactions (etcd's)

    @property
    def member_dir(self) -> str:
        return os.path.join(self.data_dir, "member")

    @property
    def wal_path(self) -> str:
        return self.wal_dir or os.path.join(self.member_dir, "wal")

    @property
    def backend_path(self) -> str:
        return os.path.join(self.member_dir, "kv")

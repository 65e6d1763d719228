"""What the server core needs to know, independent of how it was configured (flags, env, YAML)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerSettings:
    name: str
    data_dir: str
    member_id: int
    cluster_id: int
    wal_dir: str = ""
    peer_urls: tuple[str, ...] = ()
    client_urls: tuple[str, ...] = ()
    max_request_bytes: int = 1_572_864
    max_txn_ops: int = 128
    quota_backend_bytes: int = 2 * 1024**3
    backend_map_size: int = 8 * 1024**3
    watch_progress_notify_interval: float = 600.0
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    extra: dict = field(default_factory=dict)

    @property
    def member_dir(self) -> str:
        return os.path.join(self.data_dir, "member")

    @property
    def wal_path(self) -> str:
        return self.wal_dir or os.path.join(self.member_dir, "wal")

    @property
    def backend_path(self) -> str:
        return os.path.join(self.member_dir, "kv")

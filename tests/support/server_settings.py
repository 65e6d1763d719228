"""ServerSettings for in-process EtcdServer tests: etcd's defaults (as the Config would give them) for a
member named ``name`` with its data in ``data_dir``; keyword arguments override any field."""

from __future__ import annotations

import dataclasses

from etcdx.server.settings import ServerSettings


def server_settings(data_dir: str, name: str = "default", **overrides) -> ServerSettings:
    settings = ServerSettings(
        name=name,
        data_dir=data_dir,
        wal_dir="",
        member_id=1,
        cluster_id=2,
        peer_urls=("http://127.0.0.1:2380",),
        initial_members=((1, name, ("http://127.0.0.1:2380",)),),
        client_urls=("http://127.0.0.1:2379",),
        max_request_bytes=1_572_864,
        max_txn_ops=128,
        quota_backend_bytes=2 * 1024**3,
        backend_map_size=1024**3,
        watch_progress_notify_interval=600.0,
        heartbeat_interval_ms=100,
        election_timeout_ms=1000,
        snapshot_count=100_000,
        max_wals=5,
        snapshot_catchup_entries=5000,
        wal_segment_bytes=64 * 1024 * 1024,
        backend_batch_interval=0.1,
        backend_batch_limit=10000,
        auth_token="simple",
        auth_token_ttl=300,
        bcrypt_cost=10,
    )
    return dataclasses.replace(settings, **overrides)

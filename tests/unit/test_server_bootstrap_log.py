"""A new member's log starts as etcd's (bootstrap_log.py): its ConfChange entry at term 1, then the leader's
empty entry, its attributes and the cluster version, so a single member serves at raft index 4 as etcd 3.5.1
does; the cluster version is recorded once, in the backend, and not proposed again on a restart."""

from __future__ import annotations

import trio

from etcdx.mvcc import rows
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.schema import META_CLUSTER_VERSION
from etcdx.raft import ConfChange, EntryType
from etcdx.server.server import EtcdServer
from etcdx.wal.wal import WAL
from tests.support.server_settings import server_settings


def test_a_new_member_starts_with_etcds_bootstrap_entries_and_records_the_cluster_version_once(tmp_path):
    settings = server_settings(str(tmp_path / "data"))

    async def run_once() -> tuple[int, int, str | None]:
        server = EtcdServer(settings)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            seen = (server.applied_index, server.committed_index, server.applier.cluster_version)
            nursery.cancel_scope.cancel()
        return seen

    assert trio.run(run_once) == (4, 4, "3.5.0")

    async def read_wal():
        wal, replay = await WAL.open(settings.wal_path)
        await wal.close()
        return replay

    first = trio.run(read_wal).entries[0]
    assert (first.index, first.term, EntryType(first.type)) == (1, 1, EntryType.CONF_CHANGE)
    assert ConfChange.decode(first.data).node_id == EtcdServer(settings).member_id

    # Restarted: one empty entry of the new term, no second cluster-version entry.
    assert trio.run(run_once) == (5, 5, "3.5.0")
    backend = Backend(settings.backend_path)
    try:
        with backend.begin_read() as view:
            assert rows.get_meta_bytes(view, META_CLUSTER_VERSION) == b"3.5.0"
    finally:
        backend.close()

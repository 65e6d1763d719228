"""What `etcdx snapshot restore` leaves on disk: a real LMDB backend and a real WAL, read back."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio

from etcdx.cli import snapshot_command as cmd
from etcdx.config import cluster_id, member_id
from etcdx.mvcc import backend_image, rows, snapshot_file
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.memory_backend import MemoryBackend
from etcdx.mvcc.schema import KEY_DB, META_CONSISTENT_INDEX, META_FINISHED_COMPACT, META_TERM
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.raft import ConfChange, ConfChangeType, EntryType
from etcdx.wal.wal import WAL

CLUSTER = "b=http://127.0.0.1:2381,a=http://127.0.0.1:2380,c=http://127.0.0.1:2382,c=http://127.0.0.1:2392"


def _snapshot_file(tmp_path) -> str:
    backend = MemoryBackend()
    with backend.begin_write() as txn:
        txn.put(KEY_DB, b"\0" * 8 + b"_" + b"\0" * 7 + b"\2", b"kv")
        rows.put_lease(txn, 7, 60)
        rows.put_member(txn, 99, b"old member")
        rows.put_meta_int(txn, META_FINISHED_COMPACT, 1)
        rows.put_meta_int(txn, META_CONSISTENT_INDEX, 500)
    body = snapshot_file.padded(backend.snapshot())
    path = tmp_path / "snap.db"
    path.write_bytes(body + hashlib.sha256(body).digest())
    return str(path)


def test_restored_backend_and_wal(tmp_path):
    data_dir = str(tmp_path / "new")
    snap = cmd.read_snapshot(_snapshot_file(tmp_path), check_hash=True)
    members = cmd.new_members(cmd.parse_initial_cluster(CLUSTER), "tok")
    cmd.restore(cmd.tables_to_restore(snap), members, data_dir, "")

    expected_ids = sorted(
        member_id(urls, "tok")
        for urls in (
            ["http://127.0.0.1:2380"],
            ["http://127.0.0.1:2381"],
            ["http://127.0.0.1:2382", "http://127.0.0.1:2392"],
        )
    )
    backend = Backend(os.path.join(data_dir, "member", "kv"))
    try:
        with backend.begin_read() as view:
            stored = rows.members(view)
            assert [m for m, _ in stored] == expected_ids
            decoded = [rpc_pb2.Member.FromString(v) for _, v in stored]
            assert {m.name: list(m.peerURLs) for m in decoded} == {
                "a": ["http://127.0.0.1:2380"],
                "b": ["http://127.0.0.1:2381"],
                "c": ["http://127.0.0.1:2382", "http://127.0.0.1:2392"],
            }
            assert [m.ID for m in decoded] == expected_ids
            assert rows.get_meta_int(view, META_CONSISTENT_INDEX, 0) == 3
            assert rows.get_meta_int(view, META_TERM, 0) == 1
            assert rows.get_meta_int(view, META_FINISHED_COMPACT, -1) == 1
            assert rows.leases(view) == [(7, 60)]
            assert len(list(view.scan(KEY_DB))) == 1
    finally:
        backend.close()

    async def read_wal():
        wal, replay = await WAL.open(os.path.join(data_dir, "member", "wal"))
        await wal.close()
        return replay

    replay = trio.run(read_wal)
    assert (replay.hard_state.term, replay.hard_state.commit) == (1, 3)
    assert [(e.term, e.index, e.type) for e in replay.entries] == [(1, i, EntryType.CONF_CHANGE) for i in (1, 2, 3)]
    assert [ConfChange.decode(e.data) for e in replay.entries] == [
        ConfChange(ConfChangeType.ADD_NODE, i) for i in expected_ids
    ]
    assert cluster_id(expected_ids) != 0


def test_image_round_trip_through_the_file(tmp_path):
    snap = cmd.read_snapshot(_snapshot_file(tmp_path), check_hash=True)
    assert snap.kind == "etcdx"
    assert backend_image.decode(backend_image.encode(lambda name: snap.tables[name])) == snap.tables


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0 B"), (9, "9 B"), (20512, "20 kB"), (1191936, "1.2 MB"), (999_999, "1000 kB")]
)
def test_human_bytes_as_go_humanize(size, text):
    assert cmd.human_bytes(size) == text

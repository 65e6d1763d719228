"""Backup and restore (tests/support/snapshot_migration.py), small: `etcdctl snapshot save` from etcd 3.5.1
and from etcdx (a member, and a live 3-member cluster), `etcdx snapshot restore` into a new member or a new
3-member cluster, every Range and lease compared on every member. The 100,000-key run is
scripts/snapshot_migration.py."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import snapshot_migration as migration
from tests.support.procs import etcdx_cluster, start_cluster, stop_cluster


def test_restore_from_etcd_snapshot_into_a_new_cluster(etcd_server, tmp_path):
    compacted = migration.load(etcd_server.endpoint, keys=1500, seed=3)
    outcome = migration.compare(etcd_server, tmp_path, compacted, keys=1500, members=3)
    assert outcome.ranges_equal == outcome.ranges_compared
    assert outcome.leases_equal
    ours, etcdutl = json.loads(outcome.status_etcdx), json.loads(outcome.status_etcdutl)
    assert ours == etcdutl  # the same file, the same figures (hash included: the same bytes are hashed)


def test_restore_from_etcdx_snapshot(etcdx_server, tmp_path):
    compacted = migration.load(etcdx_server.endpoint, keys=1500, seed=4)
    outcome = migration.compare(etcdx_server, tmp_path, compacted, keys=1500)
    assert outcome.ranges_equal == outcome.ranges_compared
    assert outcome.leases_equal
    assert json.loads(outcome.status_etcdx)["revision"] == outcome.revision


def test_restore_from_a_live_etcdx_cluster_into_a_new_cluster(tmp_path):
    (tmp_path / "source").mkdir()
    source = start_cluster(etcdx_cluster(tmp_path / "source", 3))
    try:
        compacted = migration.load(source[1].endpoint, keys=1200, seed=5)
        outcome = migration.compare(source[2], tmp_path, compacted, keys=1200, members=3)
    finally:
        stop_cluster(source)
    assert outcome.ranges_equal == outcome.ranges_compared
    assert outcome.leases_equal
    assert json.loads(outcome.status_etcdx)["revision"] == outcome.revision


def _restore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etcdx", "snapshot", "restore", *args], capture_output=True, text=True)


def test_restore_refuses_as_etcdutl(etcdx_server, tmp_path):
    saved = tmp_path / "saved.db"
    migration.save(etcdx_server.endpoint, saved)
    damaged = tmp_path / "damaged.db"
    data = bytearray(saved.read_bytes())
    data[10] ^= 0xFF
    damaged.write_bytes(bytes(data))
    no_hash = tmp_path / "nohash.db"
    no_hash.write_bytes(bytes(data[:-32]))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    missing = _restore(str(tmp_path / "nope.db"), "--data-dir", str(tmp_path / "a"))
    assert (missing.returncode, missing.stderr.splitlines()[-1]) == (
        1,
        f"Error: open {tmp_path / 'nope.db'}: no such file or directory",
    )
    bad = _restore(str(damaged), "--data-dir", str(tmp_path / "b"))
    assert bad.returncode == 1 and bad.stderr.splitlines()[-1].startswith("Error: expected sha256 [")
    unhashed = _restore(str(no_hash), "--data-dir", str(tmp_path / "c"))
    assert unhashed.stderr.splitlines()[-1] == "Error: snapshot missing hash but --skip-hash-check=false"
    used = _restore(str(saved), "--data-dir", str(tmp_path / "used"))
    assert used.stderr.splitlines()[-1] == f'Error: data-dir "{tmp_path / "used"}" not empty or could not be read'
    mismatch = _restore(
        str(saved), "--data-dir", str(tmp_path / "f"), "--initial-cluster", "m1=http://127.0.0.1:2380", "--name", "m1"
    )
    assert mismatch.stderr.splitlines()[-1] == (
        "Error: --initial-cluster has m1=http://127.0.0.1:2380 but missing from --initial-advertise-peer-urls="
        'http://localhost:2380 ("http://localhost:2380"(resolved from "http://localhost:2380") != '
        '"http://127.0.0.1:2380"(resolved from "http://127.0.0.1:2380"))'
    )
    no_dir = _restore(str(saved))
    assert no_dir.stderr.splitlines()[-1] == 'Error: required flag(s) "data-dir" not set'
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    skipped = _restore(str(no_hash), "--data-dir", str(tmp_path / "d"), "--skip-hash-check")
    assert skipped.returncode == 1 and "snapshot file" in skipped.stderr.splitlines()[-1]  # damaged image
    intact = tmp_path / "intact.db"
    intact.write_bytes(saved.read_bytes()[:-32])
    assert _restore(str(intact), "--data-dir", str(tmp_path / "e"), "--skip-hash-check").returncode == 0

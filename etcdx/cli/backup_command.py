"""``etcdx backup --data-dir D --backup-dir B [--wal-dir W] [--backup-wal-dir BW] [--with-v3[=false]]``: etcdctl 2's
backup for an etcdx data dir. B becomes the data dir of a new single-member cluster holding D's data (v2 and v3):
started with plain ``etcdx --data-dir B`` it is its only member, with a new random member id and cluster id
(as etcdctl backup rewrites them), the name and peer URLs of D's member, and D's keys, leases, auth and v2 store.

It works while D's member runs: the tables are read in one LMDB read transaction (LMDB serves readers in other
processes), so the copy is the state the member had committed to its backend then (at most its
--backend-batch-interval behind what it acknowledged). D's WAL is not copied: B gets a new log (one ConfChange
adding its member, as `etcdx snapshot restore` writes). With the member stopped, the backup holds D's lock
while it reads, and refuses a data dir whose WAL says entries were committed past what the backend holds (a
member that crashed applies them when it starts again: start it once, then back it up), so an offline copy
misses nothing acknowledged. ``--with-v3=false`` leaves the v3 keys and leases out.
Exit code 0 when done; 1 with a message on stderr otherwise (B is left untouched if it exists and is not empty).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys

from etcdx.cli.snapshot_command import restore
from etcdx.mvcc import backend_image, rows
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.schema import (
    KEY_DB,
    LEASE_DB,
    MEMBERS_DB,
    META_CONSISTENT_INDEX,
    META_DB,
    META_FINISHED_COMPACT,
    META_SCHEDULED_COMPACT,
)
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.raft_pb2 import HardState
from etcdx.server import data_dir as data_dir_lock
from etcdx.server import identity
from etcdx.server.membership import REMOVED_META
from etcdx.wal.record import RecordType
from etcdx.wal.scan import WalCorruptError, scan_segment
from etcdx.wal.segment import list_segments, mapped

_V3_TABLES = (KEY_DB, LEASE_DB)
_V3_META = (META_CONSISTENT_INDEX, META_FINISHED_COMPACT, META_SCHEDULED_COMPACT)


class BackupError(Exception):
    """What the command prints (exit code 1)."""


def _go_bool(text: str) -> bool:
    """Go's strconv.ParseBool, as the flag package reads ``--with-v3=VALUE``."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etcdx backup", description="backup an etcd directory")
    parser.add_argument("--data-dir", default="", help="Path to the etcd data dir")
    parser.add_argument("--wal-dir", default="", help="Path to the etcd wal dir")
    parser.add_argument("--backup-dir", default="", help="Path to the backup dir")
    parser.add_argument("--backup-wal-dir", default="", help="Path to the backup wal dir")
    parser.add_argument(
        "--with-v3", type=_go_bool, nargs="?", const=True, default=True, help="Backup v3 backend data (default true)"
    )
    return parser


def backup(data_dir: str, wal_dir: str, backup_dir: str, backup_wal_dir: str, with_v3: bool) -> rpc_pb2.Member:
    """Writes the backup (see the module docstring); returns the new member."""
    member_dir = os.path.join(data_dir, "member")
    backend_path = os.path.join(member_dir, "kv")
    if not os.path.isfile(os.path.join(backend_path, "data.mdb")):
        raise BackupError(f"{data_dir!r} is not an etcdx data dir: no backend at {backend_path!r}")
    for directory in (backup_dir, backup_wal_dir):
        if directory and os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
            raise BackupError(f"backup dir {directory!r} is not empty")
    found = identity.read(member_dir)
    wal_path = wal_dir or os.path.join(member_dir, "wal")
    try:
        with data_dir_lock.locked(data_dir, *([wal_dir] if wal_dir else [])):
            tables, applied = _read_tables(backend_path)
            _check_nothing_unapplied(wal_path, applied)
    except data_dir_lock.DataDirLockedError:  # the member runs: what it committed to its backend
        tables, _ = _read_tables(backend_path)
    members = [rpc_pb2.Member.FromString(value) for _, value in tables.get(MEMBERS_DB, [])]
    own = [m for m in members if found is not None and found[0] == m.ID] or members[:1]
    if not own:
        raise BackupError(f"{data_dir!r} holds no member")
    member = rpc_pb2.Member(ID=_new_id(), name=own[0].name, peerURLs=list(own[0].peerURLs))
    dropped_meta = {REMOVED_META, *(_V3_META if not with_v3 else ())}
    tables[META_DB] = [(k, v) for k, v in tables.get(META_DB, []) if k not in dropped_meta]
    if not with_v3:
        for name in _V3_TABLES:
            tables.pop(name, None)
    restore(tables, [member], backup_dir, backup_wal_dir)
    identity.write(os.path.join(backup_dir, "member"), member.ID, _new_id())
    return member


def _read_tables(backend_path: str) -> tuple[dict[bytes, list[tuple[bytes, bytes]]], int]:
    """The backend's tables (one read transaction) and its consistent index (exact only with no writer)."""
    backend = Backend(backend_path)
    try:
        with backend.begin_read() as view:
            applied = rows.get_meta_int(view, META_CONSISTENT_INDEX, 0)
        return backend_image.decode(backend.snapshot()), applied
    finally:
        backend.close()


def _check_nothing_unapplied(wal_path: str, applied: int) -> None:
    """BackupError if the WAL's last HardState commits an index past the backend's consistent index (read only:
    a torn tail is left for the member to cut)."""
    commit = 0
    segments = list_segments(wal_path) if os.path.isdir(wal_path) else []
    for position, segment in enumerate(segments):
        try:
            with open(segment.path, "rb") as f, mapped(f) as buf:
                scan = scan_segment(segment.path, buf, is_last=position == len(segments) - 1)
        except WalCorruptError as exc:
            raise BackupError(f"{exc} (`etcdx wal repair` cuts the log there)") from None
        for _, record_type, payload in scan.records:
            if record_type == RecordType.HARD_STATE:
                commit = HardState.FromString(payload).commit
    if commit > applied:
        raise BackupError(
            f"the WAL holds entries committed up to index {commit} that the backend (at index {applied}) does not: "
            "start the member once so that it applies them, stop it, then back it up"
        )


def _new_id() -> int:
    return secrets.randbits(64) or 1


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if not args.data_dir:
            raise BackupError("--data-dir is required")
        if not args.backup_dir:
            raise BackupError("--backup-dir is required")
        member = backup(args.data_dir, args.wal_dir, args.backup_dir, args.backup_wal_dir, args.with_v3)
    except (BackupError, OSError) as exc:
        print(f"etcdx backup: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {args.data_dir} to {args.backup_dir}: a new single-member cluster, member {member.ID:x}")
    return 0

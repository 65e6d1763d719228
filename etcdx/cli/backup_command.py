"""``etcdx backup --data-dir D --backup-dir B [--wal-dir W] [--backup-wal-dir BW] [--with-v3[=false]]``: etcdctl 2's
backup for an etcdx data dir. B becomes the data dir of a new single-member cluster holding D's data (v2 and v3):
started with plain ``etcdx --data-dir B`` it is its only member, with a new random member id and cluster id
(as etcdctl backup rewrites them), the name and peer URLs of D's member, and D's keys, leases, auth and v2 store.

It works while D's member runs: the tables are read in one LMDB read transaction (LMDB serves readers in other
processes), so the copy is the state the member had committed to its backend then (at most its
--backend-batch-interval behind what it acknowledged). D's WAL is not copied: B gets a new log (one ConfChange
adding its member, as `etcdx snapshot restore` writes). A member that crashed keeps applied entries only in its
WAL until it restarts: start it once before backing it up. ``--with-v3=false`` leaves the v3 keys and leases out.
Exit code 0 when done; 1 with a message on stderr otherwise (B is left untouched if it exists and is not empty).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys

from etcdx.cli.snapshot_command import restore
from etcdx.mvcc import backend_image
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.schema import KEY_DB, LEASE_DB, MEMBERS_DB, META_DB, META_FINISHED_COMPACT, META_SCHEDULED_COMPACT
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.server import identity
from etcdx.server.membership import REMOVED_META

_V3_TABLES = (KEY_DB, LEASE_DB)
_V3_META = (META_FINISHED_COMPACT, META_SCHEDULED_COMPACT)


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
    parser.add_argument("--wal-dir", default="", help="Path to the etcd wal dir (unused: etcdx copies no WAL)")
    parser.add_argument("--backup-dir", default="", help="Path to the backup dir")
    parser.add_argument("--backup-wal-dir", default="", help="Path to the backup wal dir")
    parser.add_argument(
        "--with-v3", type=_go_bool, nargs="?", const=True, default=True, help="Backup v3 backend data (default true)"
    )
    return parser


def backup(data_dir: str, backup_dir: str, backup_wal_dir: str, with_v3: bool) -> rpc_pb2.Member:
    """Writes the backup (see the module docstring); returns the new member."""
    member_dir = os.path.join(data_dir, "member")
    backend_path = os.path.join(member_dir, "kv")
    if not os.path.isfile(os.path.join(backend_path, "data.mdb")):
        raise BackupError(f"{data_dir!r} is not an etcdx data dir: no backend at {backend_path!r}")
    for directory in (backup_dir, backup_wal_dir):
        if directory and os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
            raise BackupError(f"backup dir {directory!r} is not empty")
    found = identity.read(member_dir)
    backend = Backend(backend_path)
    try:
        tables = backend_image.decode(backend.snapshot())
    finally:
        backend.close()
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


def _new_id() -> int:
    return secrets.randbits(64) or 1


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if not args.data_dir:
            raise BackupError("--data-dir is required")
        if not args.backup_dir:
            raise BackupError("--backup-dir is required")
        member = backup(args.data_dir, args.backup_dir, args.backup_wal_dir, args.with_v3)
    except (BackupError, OSError) as exc:
        print(f"etcdx backup: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {args.data_dir} to {args.backup_dir}: a new single-member cluster, member {member.ID:x}")
    return 0

"""``etcdx snapshot restore|status``: etcdutl's snapshot commands, offline, on a file `etcdctl snapshot save`
wrote from an etcdx member (snapshot_file) or from etcd 3.5 (a bbolt file).

restore FILE --data-dir DIR [--name --initial-cluster --initial-cluster-token --initial-advertise-peer-urls
--wal-dir --skip-hash-check] makes a new member's data dir, as etcdutl does:
- the backend (DIR/member/kv, LMDB) holds the snapshot's key table (every revision kept, and the compacted
  revision), its leases, the new membership in the members table (member id -> etcdserverpb.Member with
  ID, name and peerURLs; ids as etcdx/config.py computes them from the peer URLs and the token),
  consistent index = the number of members and term 1;
- the WAL (DIR/member/wal or --wal-dir) holds one ConfChange ADD_NODE entry per member, by member id, at
  term 1 and indexes 1..n, then HardState(term=1, commit=n).
The snapshot's SHA-256 trailer is checked unless --skip-hash-check (a file copied out of a data dir has
none); messages and exit codes are etcdutl's.

status FILE [-w simple|table|json|fields] prints etcdutl's figures: a CRC-32C over every table (bucket)
name and row in name order, the newest revision of the key table, the row count and the size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass

import crc32c
import trio

from etcdx.bbolt.etcd_tables import etcd_tables
from etcdx.bbolt.reader import BoltError, BoltFile
from etcdx.config import cluster_id, member_id
from etcdx.mvcc import backend_image, rows, snapshot_file
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.revision import main_of, parse_backend_key
from etcdx.mvcc.schema import ALARM_DB, KEY_DB, MEMBERS_DB, META_CONSISTENT_INDEX, META_TERM
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.raft_pb2 import HardState
from etcdx.raft import ConfChange, ConfChangeType, Entry, EntryType
from etcdx.wal.wal import WAL

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class SnapshotError(Exception):
    """What etcdutl prints after "Error: " (exit code 1)."""


@dataclass(frozen=True)
class Snapshot:
    kind: str  # "etcdx" or "bbolt"
    tables: dict[bytes, list[tuple[bytes, bytes]]]
    size: int  # the database's size without the digest (bbolt: its pages)


def read_snapshot(path: str, *, check_hash: bool) -> Snapshot:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SnapshotError(f"open {path}: {_os_reason(exc)}") from exc
    has_digest = snapshot_file.has_digest(data)
    if check_hash:
        if not has_digest:
            raise SnapshotError("snapshot missing hash but --skip-hash-check=false")
        if not snapshot_file.digest_matches(data):
            expected, got = data[-snapshot_file.DIGEST :], hashlib.sha256(data[: -snapshot_file.DIGEST]).digest()
            raise SnapshotError(f"expected sha256 {_go_bytes(expected)}, got {_go_bytes(got)}")
    body = data[: -snapshot_file.DIGEST] if has_digest else data
    try:
        if body.startswith(_ZSTD_MAGIC):
            return Snapshot("etcdx", backend_image.decode(snapshot_file.image_of(body)), len(body))
        bolt = BoltFile(body)
        tables = {name: list(bolt.items(name)) for name in bolt.buckets()}
        return Snapshot("bbolt", tables, bolt.high_water * bolt.page_size)
    except (ValueError, BoltError) as exc:
        raise SnapshotError(f"snapshot file {path}: {exc}") from exc


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _go_bytes(data: bytes) -> str:
    return "[" + " ".join(str(b) for b in data) + "]"


# -- status --------------------------------------------------------------------------------


def status(snap: Snapshot) -> dict[str, int]:
    """etcdutl's DBStatus: hash over every table name and row in name order, newest key revision, rows, size."""
    crc, total, revision = 0, 0, 0
    for name in sorted(snap.tables):
        crc = crc32c.crc32c(name, crc)
        for key, value in snap.tables[name]:
            crc = crc32c.crc32c(value, crc32c.crc32c(key, crc))
            total += 1
            if name == KEY_DB:
                revision = main_of(parse_backend_key(key)[0])
    return {"hash": crc, "revision": revision, "totalKey": total, "totalSize": snap.size}


def human_bytes(n: int) -> str:
    """go-humanize's Bytes: SI units, one decimal below 10."""
    if n < 10:
        return f"{n} B"
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    e = 0
    while n >= 1000 ** (e + 1) and e < len(units) - 1:
        e += 1
    value = int(n / 1000**e * 10 + 0.5) / 10
    return f"{value:.1f} {units[e]}" if value < 10 else f"{value:.0f} {units[e]}"


def format_status(st: dict[str, int], write_out: str) -> str:
    row = [f"{st['hash']:x}", str(st["revision"]), str(st["totalKey"]), human_bytes(st["totalSize"])]
    if write_out == "json":
        return json.dumps(st, separators=(",", ":")) + "\n"
    if write_out == "fields":
        return "".join(
            f'"{label}" : {st[key]}\n'
            for label, key in (("Hash", "hash"), ("Revision", "revision"), ("Keys", "totalKey"), ("Size", "totalSize"))
        )
    if write_out == "table":
        header = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"]
        widths = [max(len(h), len(c)) + 2 for h, c in zip(header, row, strict=True)]
        line = "+" + "+".join("-" * w for w in widths) + "+\n"
        head = "|" + "|".join(h.center(w) for h, w in zip(header, widths, strict=True)) + "|\n"
        body = "|" + "|".join(c.rjust(w - 1) + " " for c, w in zip(row, widths, strict=True)) + "|\n"
        return line + head + line + body + line
    return ", ".join(row) + "\n"


# -- restore -------------------------------------------------------------------------------


def parse_initial_cluster(raw: str) -> dict[str, list[str]]:
    cluster: dict[str, list[str]] = {}
    for item in raw.split(","):
        name, eq, url = item.partition("=")
        if not eq or not name or not url:
            raise SnapshotError(f"failed to parse initial-cluster {raw!r}: {item!r} is not name=url")
        cluster.setdefault(name, []).append(url)
    return cluster


def new_members(cluster: dict[str, list[str]], token: str) -> list[rpc_pb2.Member]:
    """The members of the cluster the flags describe, by id (etcd's order)."""
    found = [rpc_pb2.Member(ID=member_id(urls, token), name=name, peerURLs=urls) for name, urls in cluster.items()]
    return sorted(found, key=lambda m: m.ID)


def tables_to_restore(snap: Snapshot) -> dict[bytes, list[tuple[bytes, bytes]]]:
    """etcdx's tables from the snapshot (etcd's buckets converted); SnapshotError for rows etcdx cannot read."""
    if snap.kind == "etcdx":
        return snap.tables
    try:
        return etcd_tables(snap.tables)
    except ValueError as exc:
        raise SnapshotError(f"snapshot file: {exc}") from exc


def restore(
    tables: dict[bytes, list[tuple[bytes, bytes]]], members: list[rpc_pb2.Member], data_dir: str, wal_dir: str
) -> None:
    """Writes the backend and the WAL of a new member (see the module docstring) from ``tables``."""
    member_dir = os.path.join(data_dir, "member")
    backend = Backend(os.path.join(member_dir, "kv"))
    try:
        with backend.begin_write() as txn:
            for name, table_rows in tables.items():
                if name in (MEMBERS_DB, ALARM_DB):
                    continue  # the old membership, and alarms raised by its members
                for key, value in table_rows:
                    txn.put(name, key, value)
            for member in members:
                rows.put_member(txn, member.ID, member.SerializeToString())
            rows.put_meta_int(txn, META_CONSISTENT_INDEX, len(members))
            rows.put_meta_int(txn, META_TERM, 1)
    finally:
        backend.close()
    trio.run(_write_wal, wal_dir or os.path.join(member_dir, "wal"), members)


async def _write_wal(directory: str, members: list[rpc_pb2.Member]) -> None:
    wal, _ = await WAL.open(directory)
    try:
        entries = [
            Entry(1, i, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_NODE, m.ID).encode())
            for i, m in enumerate(members, start=1)
        ]
        wal.append(entries, HardState(term=1, commit=len(members)))
        await wal.sync()
    finally:
        await wal.close()


# -- the command line ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etcdx snapshot", description="Manages etcd node snapshots.")
    parser.add_argument("-w", "--write-out", default="simple", choices=["simple", "table", "json", "fields"])
    commands = parser.add_subparsers(dest="command", required=True)
    st = commands.add_parser("status", help="Gets backend snapshot status of a given file")
    st.add_argument("filename")
    st.add_argument("-w", "--write-out", default=argparse.SUPPRESS, choices=["simple", "table", "json", "fields"])
    rs = commands.add_parser("restore", help="Restores an etcd member snapshot to an etcd directory")
    rs.add_argument("filename")
    rs.add_argument("--data-dir", default=None, help="Path to the output data directory")
    rs.add_argument("--wal-dir", default="", help="Path to the WAL directory (use --data-dir if none given)")
    rs.add_argument("--name", default="default", help="Human-readable name for this member")
    rs.add_argument("--initial-cluster", default="default=http://localhost:2380")
    rs.add_argument("--initial-cluster-token", default="etcd-cluster")
    rs.add_argument("--initial-advertise-peer-urls", default="http://localhost:2380")
    rs.add_argument("--skip-hash-check", action="store_true", help="Ignore snapshot integrity hash value")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "status":
            if not os.path.exists(args.filename):
                raise SnapshotError(f"stat {args.filename}: no such file or directory")
            sys.stdout.write(format_status(status(read_snapshot(args.filename, check_hash=False)), args.write_out))
            return 0
        return _restore_command(args)
    except SnapshotError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


def _restore_command(args: argparse.Namespace) -> int:
    if args.data_dir is None:
        raise SnapshotError('required flag(s) "data-dir" not set')
    cluster = parse_initial_cluster(args.initial_cluster)
    if args.name not in cluster:
        raise SnapshotError(f'couldn\'t find local name "{args.name}" in the initial cluster configuration')
    advertised = sorted(args.initial_advertise_peer_urls.split(","))
    if sorted(cluster[args.name]) != advertised:
        why = ""
        if len(advertised) == 1 and len(cluster[args.name]) == 1:  # etcd's detail, for one URL on each side
            a, c = advertised[0], cluster[args.name][0]
            why = f' ("{a}"(resolved from "{a}") != "{c}"(resolved from "{c}"))'
        raise SnapshotError(
            f"--initial-cluster has {args.name}={','.join(cluster[args.name])} but missing from "
            f"--initial-advertise-peer-urls={args.initial_advertise_peer_urls}{why}"
        )
    wal_dir = args.wal_dir or os.path.join(args.data_dir, "member", "wal")
    for directory in (args.data_dir, wal_dir):
        if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
            raise SnapshotError(f"data-dir {directory!r} not empty or could not be read".replace("'", '"'))
    print(f"restoring snapshot path={args.filename} data-dir={args.data_dir} wal-dir={wal_dir}", file=sys.stderr)
    snap = read_snapshot(args.filename, check_hash=not args.skip_hash_check)
    members = new_members(cluster, args.initial_cluster_token)
    restore(tables_to_restore(snap), members, args.data_dir, args.wal_dir)
    ids = [f"{m.ID:x}" for m in members]
    print(
        f"restored snapshot path={args.filename} data-dir={args.data_dir} wal-dir={wal_dir} "
        f"cluster-id={cluster_id([m.ID for m in members]):x} members={','.join(ids)}",
        file=sys.stderr,
    )
    return 0

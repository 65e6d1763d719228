"""``etcdx wal repair --data-dir DIR [--wal-dir DIR]``: cut a damaged WAL at its first damage, offline.

Run it only with the member stopped, after start-up refused with "corrupt record in <segment> at offset
<n>". It keeps a copy of everything it cuts (etcdx/wal/repair.py) and prints what it did.
"""

from __future__ import annotations

import argparse
import os
import sys

from etcdx.wal.repair import repair


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="etcdx wal", description="Offline operations on a member's WAL.")
    commands = parser.add_subparsers(dest="command", required=True)
    repair_parser = commands.add_parser("repair", help="cut the WAL at its first damaged record, keeping a copy")
    repair_parser.add_argument("--data-dir", required=True, help="the member's --data-dir")
    repair_parser.add_argument("--wal-dir", default="", help="the member's --wal-dir, if it had one")
    args = parser.parse_args(argv)
    directory = args.wal_dir or os.path.join(args.data_dir, "member", "wal")
    if not os.path.isdir(directory):
        print(f"etcdx wal repair: no WAL directory at {directory}", file=sys.stderr)
        return 1
    result = repair(directory)
    if result.cut_path is None:
        print(f"etcdx wal repair: {directory}: no damage found, nothing cut")
        return 0
    print(
        f"etcdx wal repair: cut {result.cut_path} at offset {result.cut_offset} ({result.reason}); "
        f"the cut data is kept in {result.backup_dir}"
        + (f" ({len(result.moved)} later segment(s) moved there)" if result.moved else "")
    )
    return 0

"""Moving from etcd to etcdx by backup and restore, at size (tests/support/snapshot_migration.py).

    python scripts/snapshot_migration.py [--keys 100000] [--seed 1] [--source etcd,etcdx]

For each source (a real etcd 3.5.1, or an etcdx member) it loads --keys keys written twice each (with
leases, deletions and two compactions), saves the source with `etcdctl snapshot save`, restores the file
with `etcdx snapshot restore`, starts etcdx on the new data dir and compares every Range response's kvs,
counts and revisions, and the leases, with the source's. Prints one line per source and both status
outputs; exits 1 on any difference. CI runs 1,500 keys (tests/integration/test_snapshot_restore.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.support import snapshot_migration as migration
from tests.support.procs import etcd_process, etcdx_process, kill_leftovers

SOURCES = {"etcd": etcd_process, "etcdx": etcdx_process}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--source", default="etcd,etcdx")
    args = parser.parse_args()
    failed = False
    try:
        for source in args.source.split(","):
            with tempfile.TemporaryDirectory(prefix=f"snapshot-{source}-") as tmp:
                started = time.monotonic()
                with SOURCES[source](Path(tmp)).start() as server:
                    compacted = migration.load(server.endpoint, args.keys, args.seed)
                    outcome = migration.compare(server, Path(tmp), compacted, args.keys)
                ok = outcome.ranges_equal == outcome.ranges_compared and outcome.leases_equal
                failed |= not ok
                print(
                    f"{source}: keys written={outcome.keys} live={outcome.latest_keys} "
                    f"revision={outcome.revision} compacted={outcome.compacted} "
                    f"ranges equal {outcome.ranges_equal}/{outcome.ranges_compared} "
                    f"leases equal={outcome.leases_equal} "
                    f"({time.monotonic() - started:.0f} s)\n"
                    f"  etcdx snapshot status:   {outcome.status_etcdx}\n"
                    f"  etcdutl snapshot status: {outcome.status_etcdutl}",
                    flush=True,
                )
    finally:
        kill_leftovers()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

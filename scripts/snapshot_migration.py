"""Moving from etcd to etcdx by backup and restore, at size (tests/support/snapshot_migration.py).

    python scripts/snapshot_migration.py [--keys 100000] [--seed 1] [--source etcd,etcdx-cluster] [--members 3]

For each source (a real etcd 3.5.1; an etcdx member; a live 3-member etcdx cluster) it loads --keys keys
written twice each (with leases, deletions and two compactions), saves the source with `etcdctl snapshot
save`, restores the file with `etcdx snapshot restore` into a new cluster of --members members (each restored
from the file with its own --name and peer URL), starts it and compares every member's Range responses (kvs,
counts, revisions) and leases with the source's. Prints one line per source and both status outputs; exits 1
on any difference. CI runs 1,200-1,500 keys (tests/integration/test_snapshot_restore.py).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support import snapshot_migration as migration
from tests.support.procs import (
    ServerProcess,
    etcd_process,
    etcdx_cluster,
    etcdx_process,
    kill_leftovers,
    start_cluster,
    stop_cluster,
)


@contextlib.contextmanager
def _one(start, tmp: Path) -> Iterator[ServerProcess]:
    with start(tmp).start() as server:
        yield server


@contextlib.contextmanager
def _cluster(tmp: Path) -> Iterator[ServerProcess]:
    members = start_cluster(etcdx_cluster(tmp, 3))
    try:
        yield members[0]  # written and saved through one member; the others replicate
    finally:
        stop_cluster(members)


SOURCES = {
    "etcd": lambda tmp: _one(etcd_process, tmp),
    "etcdx": lambda tmp: _one(etcdx_process, tmp),
    "etcdx-cluster": _cluster,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--source", default="etcd,etcdx-cluster")
    parser.add_argument("--members", type=int, default=3, help="members of the restored cluster")
    args = parser.parse_args()
    failed = False
    try:
        for source in args.source.split(","):
            with tempfile.TemporaryDirectory(prefix=f"snapshot-{source}-") as tmp:
                started = time.monotonic()
                with SOURCES[source](Path(tmp)) as server:
                    compacted = migration.load(server.endpoint, args.keys, args.seed)
                    outcome = migration.compare(server, Path(tmp), compacted, args.keys, members=args.members)
                ok = outcome.ranges_equal == outcome.ranges_compared and outcome.leases_equal
                failed |= not ok
                print(
                    f"{source} -> {args.members}-member etcdx cluster: "
                    f"keys written={outcome.keys} live={outcome.latest_keys} "
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

"""The long fault campaign: runs of a 3-member etcdx cluster under KV and watch traffic while a seeded
schedule injects faults (kill -9, SIGSTOP pauses, symmetric and one-way partitions, slow fsync, a member
removed, wiped and added back or rejoined as a new member); prints the faults per kind, operations, acknowledged
writes, time to recover and violations. Exits 1 unless every history is linearizable, every watch got
its due, no acknowledged write is lost, the members agree, and the cluster recovered from every fault.

    python scripts/fault_campaign.py [--faults 200] [--seed 0] [--faults-per-run 25] [--clients 4]
        [--watchers 2] [--pace 0.03] [--kinds kill,pause,...] [--plant local-reads] [--keep DIR] [--quiet]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.faults.campaign import PACE, campaign  # noqa: E402
from tests.support.faults.injectors import KINDS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faults-per-run", type=int, default=25)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--watchers", type=int, default=2)
    parser.add_argument("--pace", type=float, default=PACE, help="seconds each client waits between operations")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of " + ",".join(KINDS))
    parser.add_argument("--plant", default=None, help="run tests.support.planted_etcdx with this bug")
    parser.add_argument("--keep", default=None, help="keep data dirs and logs in this directory")
    parser.add_argument("--quiet", action="store_true", help="do not print each fault")
    args = parser.parse_args()
    kinds = tuple(args.kinds.split(","))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown fault kinds: {unknown}")
    command = ("-m", "tests.support.planted_etcdx", args.plant) if args.plant else ("-m", "etcdx")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fault-campaign-") as scratch:
        directory = Path(args.keep) if args.keep else Path(scratch)
        report = campaign(
            directory,
            faults=args.faults,
            seed=args.seed,
            faults_per_run=args.faults_per_run,
            kinds=kinds,
            clients=args.clients,
            watchers=args.watchers,
            pace=args.pace,
            command=command,
            echo=None if args.quiet else lambda line: print(line, flush=True),
        )
    print(report.summary())
    print(f"campaign time: {time.monotonic() - started:.0f} s (seed {args.seed})")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())

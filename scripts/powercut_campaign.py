"""Power-cut campaign: etcdx on a LazyFS mount, cut N times under a write load, checked after every restart.

    python scripts/powercut_campaign.py --cuts 100 [--keep-fraction 0.5] [--seed 1] [--plant wal-fdatasync]

Prints one line per cut and a summary (cuts, acknowledged writes, history and key checks, failures, time);
exits 1 if any check failed. --keep-fraction 0 drops every unsynced write at a cut; 0 < F <= 1 keeps each
unsynced page with probability F (as a disk's write-back cache may). --plant starts the member with a planted
fault (see tests/support/powercut_member.py); a campaign with a plant is expected to fail. Needs root and
/dev/fuse (pyfuse3 and fusermount3). The checks are described in tests/support/powercut.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.powercut import run_campaign  # noqa: E402
from tests.support.powercut_member import PLANTS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=int, default=100)
    parser.add_argument("--keep-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--plant", choices=PLANTS)
    parser.add_argument("--workdir", help="where the store, mount point and logs go (default: a temporary dir)")
    parser.add_argument("--stop-at-first-failure", action="store_true")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the member and the filesystem this started are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="etcdx-powercut-") as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        result = run_campaign(
            workdir,
            args.cuts,
            keep_fraction=args.keep_fraction,
            seed=args.seed,
            plant=args.plant,
            threads=args.threads,
            stop_at_first_failure=args.stop_at_first_failure,
            progress=lambda r: print(r.summary(), *r.failures[-1:], flush=True),
        )
    for failure in result.failures:
        print("FAILURE", failure)
    print(
        f"SUMMARY keep_fraction={args.keep_fraction} plant={args.plant} seed={args.seed} {result.summary()}",
        flush=True,
    )
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())

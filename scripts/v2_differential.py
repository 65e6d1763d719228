"""The full v2 differential campaign (tests/support/v2_campaign.py has the operations and what is normalised):
starts etcd 3.4.23 (--enable-v2) and etcdx (--enable-v2) on loopback ports, runs the seeded sequences against
both and prints every mismatch and a summary line; exits non-zero on any mismatch.

    python scripts/v2_differential.py --sequences 300
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tests.support.procs import etcd34_process, etcdx_process  # noqa: E402
from tests.support.v2_campaign import run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=300)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--length", type=int, default=12, help="operations per sequence")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = pathlib.Path(tmp)
        etcd = etcd34_process(tmp_path, extra_args=("--enable-v2",))
        etcdx = etcdx_process(tmp_path, extra_args=("--enable-v2",))
        with etcd.start(), etcdx.start():
            started = time.monotonic()
            seeds = range(args.first_seed, args.first_seed + args.sequences)
            campaign = run(etcd.client_port, etcdx.client_port, seeds, args.length)
    for failure in campaign.failures[:50]:
        print("MISMATCH", failure)
    print(
        f"v2 differential: {len(seeds)} sequences x {args.length} ops (seeds {seeds.start}-{seeds.stop - 1}), "
        f"{campaign.checked} answers compared, {len(campaign.failures)} mismatches, "
        f"{time.monotonic() - started:.0f}s"
    )
    print("answers by kind:", ", ".join(f"{kind}: {count}" for kind, count in sorted(campaign.codes.items())))
    return 1 if campaign.failures else 0


if __name__ == "__main__":
    sys.exit(main())

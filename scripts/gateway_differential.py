"""The /v3 gateway differential (tests/support/gateway_campaign.py has the cases and what is normalised, with
the reasons): starts etcd 3.5.1 and etcdx on loopback ports, sends every case and ``--seeds`` sets of seeded
random bodies to both, prints every mismatch and a summary line; exits non-zero on any mismatch.

    python scripts/gateway_differential.py --seeds 50
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tests.support.gateway_campaign import CASES, random_bodies, run  # noqa: E402
from tests.support.procs import etcd_process, etcdx_process  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=50, help="sets of 20 random bodies")
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    cases = [case for seed in seeds for case in random_bodies(seed)] + CASES
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = pathlib.Path(tmp)
        etcd, etcdx = etcd_process(tmp_path), etcdx_process(tmp_path)
        with etcd.start(), etcdx.start():
            started = time.monotonic()
            campaign = run(etcd.client_port, etcdx.client_port, cases)
    for known in campaign.known:
        print("KNOWN", known)
    for failure in campaign.failures[:60]:
        print("MISMATCH", failure)
    print(
        f"gateway differential: {len(CASES)} scripted cases + {len(seeds)} seeds x 20 random bodies, "
        f"{campaign.checked} answers compared over {len(campaign.paths)} paths, {len(campaign.failures)} mismatches, "
        f"{len(campaign.known)} known service differences, "
        f"{time.monotonic() - started:.0f}s"
    )
    return 1 if campaign.failures else 0


if __name__ == "__main__":
    sys.exit(main())

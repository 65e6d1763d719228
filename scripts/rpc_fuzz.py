"""The full RPC fuzz campaign (tests/fuzz/rpc_campaign.py), per extension mode, against a fresh member each.

    python scripts/rpc_fuzz.py [--requests 20000] [--seed 1] [--modes compiled,twins]

For each mode (compiled: the Cython extensions, required; twins: ETCDX_NO_EXTENSIONS=1) it starts a member,
sends the generated requests, kills it (-9), restarts it, checks the state, and prints one summary line.
Exits 1 if any mode had a crash, a hang, a handler or apply failure in the log, or a state mismatch.
CI runs a smaller campaign of the same kind (tests/fuzz/test_rpc_fuzz.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.fuzz.rpc_campaign import Campaign
from tests.support.procs import etcdx_process

MODES = {"compiled": {"ETCDX_REQUIRE_EXTENSIONS": "1"}, "twins": {"ETCDX_NO_EXTENSIONS": "1"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", default="compiled,twins")
    args = parser.parse_args()
    failed = False
    for mode in args.modes.split(","):
        with (
            tempfile.TemporaryDirectory(prefix=f"rpc-fuzz-{mode}-") as tmp,
            etcdx_process(Path(tmp), env=MODES[mode]).start() as server,
        ):
            campaign = Campaign(server)
            report = campaign.run(args.requests, args.seed)
            if not report.crashes:
                campaign.check_restart()
            print(f"{mode}: {report.summary()}", flush=True)
            for finding in [*report.hangs, *report.log_findings, *report.state_mismatches][:20]:
                print(f"  {finding.strip()[:300]}")
            if report.crashes:
                print(server.log_tail())
            failed |= bool(report.crashes or report.hangs or report.log_findings or report.state_mismatches)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

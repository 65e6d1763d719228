"""Campaign and timing for the linearizability checker (tests/support/lincheck).

    python bench/lincheck_campaign.py [--seeds N] [--ops N] [--clients N] [--timeout-rate R]

1. Judges N generated histories of --ops operations from --clients clients (timed-out operations at
   --timeout-rate): every one must be accepted; prints the verdicts and the search time (min/median/max).
2. Plants each fault in N more histories (without timed-out operations and leases, except for stale reads;
   see generate.py): every one must be rejected.
Exits 1 on any wrong verdict. Speed here is information, never a test assertion.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.lincheck import LINEARIZABLE, VIOLATION, check  # noqa: E402
from tests.support.lincheck.generate import FAULTS, history  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--timeout-rate", type=float, default=0.02)
    parser.add_argument("--budget", type=int, default=2_000_000)
    args = parser.parse_args()
    wrong = 0
    verdicts: Counter[str] = Counter()
    seconds, steps = [], []
    for seed in range(args.seeds):
        h = history(seed, args.ops, args.clients, timeout_rate=args.timeout_rate)
        start = time.perf_counter()
        result = check(h, budget=args.budget)
        seconds.append(time.perf_counter() - start)
        steps.append(result.steps)
        verdicts[result.verdict] += 1
        if result.verdict != LINEARIZABLE:
            print(f"seed {seed}: {result.report}")
            wrong += result.verdict == VIOLATION
    print(
        f"valid: {args.seeds} histories x {args.ops} ops, {args.clients} clients, timeout rate {args.timeout_rate}: "
        f"{dict(verdicts)}; seconds min {min(seconds):.3f} median {statistics.median(seconds):.3f} "
        f"max {max(seconds):.3f}; steps median {statistics.median(steps):.0f} max {max(steps)}"
    )
    for fault in FAULTS:
        stale = fault == "stale-read"
        caught = missed = skipped = 0
        seconds = []
        for seed in range(args.seeds):
            h = history(seed, args.ops, args.clients, fault=fault, leases=stale, timeout_rate=0.02 if stale else 0.0)
            if h is None:
                skipped += 1
                continue
            start = time.perf_counter()
            result = check(h, budget=args.budget)
            seconds.append(time.perf_counter() - start)
            if result.verdict == VIOLATION:
                caught += 1
            else:
                missed += 1
                print(f"{fault} seed {seed} NOT caught: {result.report}")
        median = f"{statistics.median(seconds):.3f}" if seconds else "-"
        print(f"{fault}: caught {caught}, missed {missed}, no place to plant {skipped}; median seconds {median}")
        wrong += missed
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the seeded cluster simulation (tests/sim) over many seeds; replay one seed exactly.

    python scripts/sim_campaign.py --seeds 1000             # seeds 0..999, cluster size chosen by each seed
    python scripts/sim_campaign.py --first 5000 --seeds 200 --members 5
    python scripts/sim_campaign.py --seed 42 -v             # one seed, with the checker's full report
    python scripts/sim_campaign.py --plant forget_vote --flavor crashy --until-failure --seeds 500

A seed decides everything (cluster size unless --members, Raft settings, faults, clients, timings), so a
failing seed prints the command that replays it and fails the same way. Exit status 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.sim.planted import PLANTED  # noqa: E402
from tests.sim.simulation import FLAVORS, run  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=100, help="how many seeds, from --first")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--seed", type=int, help="run this one seed only")
    ap.add_argument("--members", type=int, choices=[1, 3, 5], help="cluster size (default: chosen by the seed)")
    ap.add_argument("--flavor", choices=FLAVORS, help="kind of faults (default: chosen by the seed)")
    ap.add_argument("--plant", choices=sorted(PLANTED), help="run with this planted bug (tests/sim/planted.py)")
    ap.add_argument("--invariants-only", action="store_true", help="skip lincheck (Raft invariants only)")
    ap.add_argument("--until-failure", action="store_true", help="stop at the first failing seed")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per seed, full report on failure")
    args = ap.parse_args()
    if args.plant:
        with PLANTED[args.plant]():
            return campaign(args)
    return campaign(args)


def campaign(args: argparse.Namespace) -> int:
    seeds = [args.seed] if args.seed is not None else list(range(args.first, args.first + args.seeds))
    started = time.perf_counter()
    failed: list[int] = []
    sizes = {1: 0, 3: 0, 5: 0}
    ops = answered = 0
    totals: dict[str, int] = {}
    for seed in seeds:
        try:
            outcome = run(seed, args.members, args.flavor, not args.invariants_only)
        except AssertionError as exc:  # a Raft invariant (SafetyViolation) or another assertion
            failed.append(seed)
            print(f"seed {seed}: FAILED: {type(exc).__name__}: {exc}")
            if args.verbose:
                traceback.print_exc()
        except Exception:
            failed.append(seed)
            print(f"seed {seed}: FAILED with an exception")
            traceback.print_exc()
        else:
            sizes[outcome.members] += 1
            ops += outcome.ops
            answered += outcome.answered
            for what, n in outcome.faults.items():
                totals[what] = totals.get(what, 0) + n
            if args.verbose or not outcome.ok:
                print(
                    f"seed {seed}: {outcome.members} members, {outcome.flavor}, {outcome.ops} ops"
                    f" ({outcome.unknown} unknown), faults {outcome.faults}, {outcome.verdict}, {outcome.seconds:.2f}s"
                )
            if not outcome.ok:
                failed.append(seed)
                print(outcome.report)
        if failed and args.until_failure:
            print(f"first failure at seed {seed}: {seeds.index(seed) + 1} seeds run")
            break
    elapsed = time.perf_counter() - started
    ran = seeds.index(seed) + 1
    passed = ran - len(failed)
    print(
        f"{passed} of {ran} seeds passed in {elapsed:.1f}s"
        f" (clusters of 1/3/5 members: {sizes[1]}/{sizes[3]}/{sizes[5]}; {ops} client ops, {answered} answered)"
    )
    print("faults and what they led to, over all seeds: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))
    for seed in failed:
        options = f" --members {args.members}" if args.members else ""
        options += f" --flavor {args.flavor}" if args.flavor else ""
        options += f" --plant {args.plant}" if args.plant else ""
        print(f"replay: python scripts/sim_campaign.py --seed {seed}{options} -v")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The long leader drill: a real etcdx cluster under client load while its leader is killed (kill -9) again and
again; prints the kills, the time to a new leader (median, max) and the linearizability verdict of the clients'
history. Exits 1 unless the history is linearizable.

    python scripts/leader_drill.py [--seconds 120] [--kill-every 5] [--members 3] [--clients 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.leader_drill import drill  # noqa: E402
from tests.support.lincheck import LINEARIZABLE  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leader-drill-") as directory:
        report = drill(
            Path(directory),
            size=args.members,
            seconds=args.seconds,
            kill_every=args.kill_every,
            clients=args.clients,
            seed=args.seed,
        )
    print(report.summary())
    if report.verdict != LINEARIZABLE:
        print(report.report)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench/peer_transport.py runs to its end at a small size (its figures are for reading, not asserting)."""

import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "bench" / "peer_transport.py"


def test_peer_bench_runs_and_reports_every_figure():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--messages", "2000", "--snapshot-mb", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    assert lines[0].startswith("MsgApp x2000") and lines[0].endswith("dropped 0")
    assert lines[1].startswith("snapshot 2 MB random") and lines[2].startswith("snapshot 2 MB text")

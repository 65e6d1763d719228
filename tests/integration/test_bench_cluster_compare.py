"""bench/cluster_compare.py, as small as it runs: one cell, one round, both 3-member clusters; the report has
the ratio and each cluster's server CPU per request, and every member is stopped by PID."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench", "cluster_compare.py"
)


def test_cluster_compare_reports_ratios_and_cluster_cpu(tmp_path):
    out = tmp_path / "report"
    command = [sys.executable, SCRIPT, "--scenarios", "put", "--clients", "2", "--repeat", "1", "--duration", "0.3"]
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]

    report = (out / "report.md").read_text()
    header = "| scenario | clients | etcd req/s | etcdx req/s | etcdx/etcd |"
    (row,) = report[report.index(header) :].split("\n\n")[0].splitlines()[2:]
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[:2] == ["put", "2"] and float(cells[2]) > 0 and float(cells[3]) > 0 and float(cells[4]) > 0
    assert "## Clusters" in report and "python bench/cluster_compare.py --scenarios put" in report

    results = json.loads((out / "results.json").read_text())
    (cell,) = results["cells"]
    for name in ("etcd", "etcdx"):
        (run,) = cell["runs"][name]
        assert run["errors"] == {} and run["succeeded"] > 0
        assert run["server_cpu_seconds"] > 0 and run["server_cpu_us_per_request"] > 0
    members = [m for target in results["targets"] for m in target["members"]]
    assert [m["name"] for m in members] == ["m0", "m1", "m2"] * 2
    for target in results["targets"]:  # the load went to every member, the leader's endpoint first
        assert sorted(target["endpoint"].split(",")) == sorted(m["endpoint"] for m in target["members"])
    for member in members:  # every member stopped and reaped before the script returned
        with pytest.raises(ProcessLookupError):
            os.kill(member["pid"], 0)

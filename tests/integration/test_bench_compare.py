"""`etcdx bench compare --start etcdx --start etcd`: one tiny matrix, and the report folder it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_compare_writes_a_report_with_every_cell_for_both_targets(tmp_path):
    out = tmp_path / "report"
    command = [sys.executable, "-m", "etcdx", "bench", "compare", "--start", "etcdx", "--start", "etcd"]
    command += ["--scenarios", "put,range-serializable", "--clients", "1,4", "--repeat", "2", "--duration", "0.3"]
    data_root = tmp_path / "servers" / "data"  # not made yet: compare makes it
    command += ["--out", str(out), "--data-root", str(data_root)]
    subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)

    assert data_root.is_dir()  # the servers' data dirs were in it (removed as each server stopped)
    report = (out / "report.md").read_text()
    for name in ("report.md", "results.json", "throughput-put.png", "throughput-range-serializable.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "latency-cdf-put-c4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "uname -a" in report and "etcd Version: 3.5.1" in report and "--start etcdx --start etcd" in report

    header = "| scenario | clients | etcdx req/s | etcd req/s | etcdx/etcd |"
    table = report[report.index(header) :].split("\n\n")[0].splitlines()[2:]
    rows = {(cells[1].strip(), cells[2].strip()): cells[3:6] for cells in (row.split("|") for row in table)}
    assert set(rows) == {(s, c) for s in ("put", "range-serializable") for c in ("1", "4")}
    for etcdx_rate, etcd_rate, ratio in rows.values():
        assert float(etcdx_rate) > 0 and float(etcd_rate) > 0 and float(ratio) > 0

    header = (
        "| scenario | clients | etcdx p50 ms | etcdx p99 ms | etcdx tool us/req | etcdx server us/req | etcd p50 ms"
    )
    table = report[report.index(header) :].split("\n\n")[0].splitlines()[2:]
    assert len(table) == 4
    for row in table:  # the tool's and each server's CPU per request, both measured
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert float(cells[4]) > 0 and float(cells[5]) > 0 and float(cells[8]) > 0 and float(cells[9]) > 0

    results = json.loads((out / "results.json").read_text())
    assert [t["name"] for t in results["targets"]] == ["etcdx", "etcd"] and results["client"] == "native"
    for cell in results["cells"]:
        assert {name: len(runs) for name, runs in cell["runs"].items()} == {"etcdx": 2, "etcd": 2}
        runs = [run for runs in cell["runs"].values() for run in runs]
        assert all(run["succeeded"] > 0 and run["errors"] == {} and run["client"] == "native" for run in runs)
        assert all(run["server_cpu_seconds"] > 0 and run["server_cpu_us_per_request"] > 0 for run in runs)
    for target in results["targets"]:
        with pytest.raises(ProcessLookupError):  # stopped by PID and reaped before the command returned
            os.kill(target["pid"], 0)
    leftover = [p.name for p in tmp_path.iterdir() if p.name.startswith(("etcdx-", "etcd-"))]
    assert leftover == []  # each server's data dir is removed once it is stopped


def test_compare_measures_one_server_with_both_clients_alternated(tmp_path):
    out = tmp_path / "report"
    command = [sys.executable, "-m", "etcdx", "bench", "compare", "--start", "etcd", "--client", "native,grpcio"]
    command += ["--scenarios", "put", "--clients", "4", "--repeat", "2", "--duration", "0.3"]
    command += ["--out", str(out), "--data-root", str(tmp_path)]
    subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)

    results = json.loads((out / "results.json").read_text())
    targets = results["targets"]
    assert [(t["name"], t["client"]) for t in targets] == [("etcd-native", "native"), ("etcd-grpcio", "grpcio")]
    assert targets[0]["pid"] == targets[1]["pid"]  # one server, measured with each client in turn
    [cell] = results["cells"]
    for name, client in (("etcd-native", "native"), ("etcd-grpcio", "grpcio")):
        assert [run["client"] for run in cell["runs"][name]] == [client, client]
        assert all(run["succeeded"] > 0 and run["server_cpu_us_per_request"] > 0 for run in cell["runs"][name])
    assert "| put | 4 |" in (out / "report.md").read_text()

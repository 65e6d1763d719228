"""Logging flags: --log-outputs (files and streams, several at once), --log-level filtering, log lines shaped as
etcd 3.5.1's zap JSON lines (checked against a real etcd's), --enable-log-rotation producing lumberjack-named
backups, and the flag combinations etcd refuses, with etcd's error text (compared with a real etcd's)."""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import subprocess
import sys
import time

import grpc
import pytest

from etcdx import log
from etcdx.log_config import LogRotation
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support import procs

ZAP_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})$")
LEVELS = {"debug", "info", "warn", "error", "dpanic", "panic", "fatal"}
BACKUP_NAME = re.compile(r"^etcdx-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log(\.gz)?$")


def _lines(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _wait_for_ready_line(path, timeout: float = 10.0) -> None:
    """Waits, while the member runs, until its file holds "ready to serve client requests". A member answers its
    first client (which is when procs' start() returns) a moment before it logs that line, so a member stopped
    at once may never write it."""
    deadline = time.monotonic() + timeout
    while not any(line["msg"] == "ready to serve client requests" for line in _lines(path)):
        assert time.monotonic() < deadline, f"no ready line in {path} after {timeout}s"
        time.sleep(0.05)


def _zap_lines(path) -> list[dict]:
    """The JSON lines of a log that start with zap's four keys (etcd's first lines, written before its logger is
    set up, carry a numeric ts: they are left out)."""
    return [line for line in _lines(path) if isinstance(line.get("ts"), str)]


def _check_shape(lines: list[dict]) -> None:
    assert lines
    for line in lines:
        # zap's order; a named logger (etcd's raft lines: "logger":"raft") puts its name after ts.
        assert [key for key in line if key != "logger"][:4] == ["level", "ts", "caller", "msg"], line
        assert line["level"] in LEVELS and ZAP_TS.match(line["ts"]), line
        assert re.match(r"^[\w.-]+/[\w.-]+\.\w+:\d+$", line["caller"]), line


def test_file_and_stream_outputs_carry_etcds_line_shape(tmp_path):
    etcd_log, etcdx_log = tmp_path / "etcd.log", tmp_path / "etcdx.log"
    with procs.etcd_process(tmp_path, extra_args=("--log-outputs", f"{etcd_log},stdout")).start():
        pass
    with procs.etcdx_process(tmp_path, extra_args=("--log-outputs", f"{etcdx_log},stdout")).start() as member:
        _wait_for_ready_line(etcdx_log)
    _check_shape(_zap_lines(etcd_log))  # the oracle: the shape holds for etcd's own lines
    lines = _zap_lines(etcdx_log)
    _check_shape(lines)
    assert any(line["msg"] == "ready to serve client requests" for line in lines)
    # The same lines went to stdout too (the process's captured output).
    with open(member.log_path) as f:
        streamed = [json.loads(text) for text in f if text.startswith("{")]
    assert [line["msg"] for line in lines] == [line["msg"] for line in streamed if isinstance(line.get("ts"), str)]


def test_log_level_filters_lower_levels(tmp_path):
    path = tmp_path / "warn.log"
    member = procs.etcdx_process(tmp_path, extra_args=("--log-outputs", str(path), "--log-level", "warn"))
    with member.start(), grpc.insecure_channel(member.endpoint) as channel:
        maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        status = maintenance.Status(rpc_pb2.StatusRequest(), timeout=5)
        alarm = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=status.header.member_id)
        alarm.alarm = rpc_pb2.NOSPACE
        maintenance.Alarm(alarm, timeout=5)
    lines = _lines(path)
    assert [line["msg"] for line in lines if line["level"] == "warn"] == ["alarm raised"]
    assert not [line for line in lines if line["level"] in ("debug", "info")]


@pytest.mark.parametrize("compress", [False, True])
def test_rotation_keeps_lumberjack_named_backups(tmp_path, compress):
    """1 MB files, one backup kept: 2.5 MB of lines leave the live file and one backup, named as lumberjack
    names them ("<name>-<UTC time>.log", gzipped with compress), holding whole lines."""
    path = tmp_path / "etcdx.log"
    logger = log.get_logger("etcdx.test_rotation")
    log.configure("info", (str(path),), LogRotation(max_size_mb=1, max_backups=1, compress=compress))
    try:
        for n in range(25_000):
            logger.info("a line of about one hundred bytes", n=n, padding="x" * 20)
    finally:
        log.configure()
    backups = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "etcdx-*")))
    assert len(backups) == 1 and BACKUP_NAME.match(backups[0]), backups
    assert backups[0].endswith(".gz") == compress
    assert os.path.getsize(path) <= 1024 * 1024
    opener = gzip.open if compress else open
    with opener(tmp_path / backups[0], "rt") as f:
        kept = [json.loads(line) for line in f]
    assert len(kept) > 5000 and kept[-1]["n"] + 1 == _lines(path)[0]["n"]


def test_member_with_rotation_logs_to_its_file(tmp_path):
    path = tmp_path / "rotated.log"
    flags = ("--enable-log-rotation", "--log-outputs", str(path), "--log-rotation-config-json", '{"maxsize": 1}')
    with procs.etcdx_process(tmp_path, extra_args=flags).start():
        _wait_for_ready_line(path)
    assert any(line["msg"] == "ready to serve client requests" for line in _lines(path))


REFUSED = [
    ("--logger", "capnslog"),
    ("--logger", "glog"),
    ("--enable-log-rotation",),
    ("--enable-log-rotation", "--log-outputs", "stderr"),
    ("--enable-log-rotation", "--log-outputs", "{dir}/a.log,{dir}/b.log"),
    ("--enable-log-rotation", "--log-outputs", "{dir}/a.log,stderr", "--log-rotation-config-json", "{{bad"),
    ("--enable-log-rotation", "--log-outputs", "{dir}/a.log", "--log-rotation-config-json", '{{"maxsize":"1"}}'),
    ("--enable-log-rotation", "--log-outputs", "{dir}/a.log", "--log-rotation-config-json", '{{"compress":1}}'),
    ("--log-outputs", "{dir}/missing/a.log"),
]


def _refusal(argv: list[str]) -> tuple[int, str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return result.returncode, result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("flags", REFUSED, ids=[" ".join(f) for f in REFUSED])
def test_refused_like_etcd(tmp_path, flags):
    args = [flag.format(dir=tmp_path) for flag in flags]
    etcd_code, etcd_line = _refusal([procs.ETCD, "--data-dir", str(tmp_path / "etcd"), *args])
    etcdx_code, etcdx_text = _refusal([sys.executable, "-m", "etcdx", "--data-dir", str(tmp_path / "etcdx"), *args])
    etcd_error = json.loads(etcd_line)
    assert etcd_error["msg"] == "failed to verify flags" and etcd_code != 0
    assert etcdx_code != 0
    assert etcdx_text == etcd_error["error"]
    assert not os.path.exists(tmp_path / "etcdx")

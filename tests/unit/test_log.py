"""Structured logging: etcd 3.5 zap JSON lines, level filtering, outputs."""

from __future__ import annotations

import json
import re

import pytest

from etcdx import log


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "etcdx.log"
    yield path
    log.configure()


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_line_has_etcds_keys_in_etcds_order(log_file):
    log.configure("info", (str(log_file),))
    log.get_logger("etcdx.test").info("serving client traffic", address="127.0.0.1:2379", count=3)
    [line] = lines(log_file)
    assert list(line) == ["level", "ts", "caller", "msg", "address", "count"]
    assert line["level"] == "info"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    assert re.fullmatch(r"unit/test_log\.py:\d+", line["caller"])
    assert line["msg"] == "serving client traffic"
    assert (line["address"], line["count"]) == ("127.0.0.1:2379", 3)


@pytest.mark.parametrize(
    "level, expected",
    [
        ("debug", ["debug", "info", "warn", "error"]),
        ("info", ["info", "warn", "error"]),
        ("warn", ["warn", "error"]),
        ("error", ["error"]),
    ],
)
def test_log_level_filters(log_file, level, expected):
    log.configure(level, (str(log_file),))
    logger = log.get_logger("etcdx.test")
    logger.debug("d")
    logger.info("i")
    logger.warning("w")
    logger.error("e")
    assert [line["level"] for line in lines(log_file)] == expected


def test_several_outputs_each_get_every_line(tmp_path, capsys):
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    try:
        log.configure("info", ("stderr", str(first), str(second)))
        log.get_logger("etcdx.test").warning("quota exceeded", quota=1)
    finally:
        log.configure()
    assert lines(first) == lines(second)
    assert json.loads(capsys.readouterr().err)["msg"] == "quota exceeded"


def test_stdout_output(capsys):
    try:
        log.configure("info", ("stdout",))
        log.get_logger("etcdx.test").error("failed", error="boom")
    finally:
        log.configure()
    line = json.loads(capsys.readouterr().out)
    assert (line["level"], line["error"]) == ("error", "boom")

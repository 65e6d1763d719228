"""How many read workers a member starts (etcdx/cli/main.py ``_worker_plan``): a count given that cannot work is
refused, the default ("auto") falls back to one process where workers cannot work."""

from __future__ import annotations

import pytest

from etcdx.cli import main
from etcdx.config import parse_config

UNIX_ONLY = ["--listen-client-urls", "unix://localhost:4001", "--advertise-client-urls", "http://127.0.0.1:2379"]


@pytest.fixture(autouse=True)
def three_cores(monkeypatch):
    monkeypatch.setattr(main, "automatic_read_workers", lambda: 2)


def plan(argv: list[str]):
    return main._worker_plan(parse_config(argv, {}), argv)


def test_auto_is_a_worker_per_core_beyond_the_members_own(tmp_path):
    argv = ["--data-dir", str(tmp_path / "d")]
    assert plan(argv).count == 2
    assert plan([*argv, "--experimental-read-workers", "3"]).count == 3
    assert plan([*argv, "--experimental-read-workers", "0"]) is None


def test_auto_serves_from_one_process_without_a_tcp_client_url(tmp_path):
    argv = ["--data-dir", str(tmp_path / "d"), *UNIX_ONLY]
    assert plan(argv) is None
    with pytest.raises(ValueError, match="needs at least one http:// or https://"):
        plan([*argv, "--experimental-read-workers", "1"])


def test_auto_serves_from_one_process_when_the_data_dir_is_too_deep_for_unix_sockets(tmp_path):
    argv = ["--data-dir", str(tmp_path / ("d" * 100))]
    assert plan(argv) is None
    with pytest.raises(ValueError, match="too long for a unix socket"):
        plan([*argv, "--experimental-read-workers", "1"])


def test_auto_counts_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.undo()
    monkeypatch.setattr(main.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert main.automatic_read_workers() == 3
    monkeypatch.setattr(main.os, "sched_getaffinity", lambda pid: {5})
    assert main.automatic_read_workers() == 0

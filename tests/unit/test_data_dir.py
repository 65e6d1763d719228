"""The data-dir guard: an exclusive lock per directory, taken without creating or changing anything inside."""

from __future__ import annotations

import os

import pytest

from etcdx.server.data_dir import DataDirLockedError, locked, make_durable_dirs


def test_a_second_lock_on_the_same_directory_is_refused_until_the_first_is_released(tmp_path):
    path = str(tmp_path / "data")
    with locked(path):
        assert os.listdir(path) == []  # the lock creates nothing inside
        same = str(tmp_path / "data" / ".." / "data")
        with pytest.raises(DataDirLockedError, match="is in use: another etcdx member holds its lock"), locked(same):
            pass
    with locked(path):
        pass


def test_each_locked_directory_is_checked(tmp_path):
    data, wal = str(tmp_path / "data"), str(tmp_path / "wal")
    with locked(wal):
        with pytest.raises(DataDirLockedError, match="wal"), locked(data, wal):
            pass
        with locked(data):  # the failed attempt released what it had taken
            pass


def test_make_durable_dirs_creates_missing_parents(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    make_durable_dirs(str(target), str(tmp_path / "a"))
    assert target.is_dir()

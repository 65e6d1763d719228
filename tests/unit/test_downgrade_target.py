"""Downgrade's target version as etcd 3.5.1 reads it (each answer observed on etcd 3.5.1 with VALIDATE)."""

from __future__ import annotations

import pytest

from etcdx.api.grpc.downgrade import ERR_WRONG_VERSION_FORMAT, parse_target


@pytest.mark.parametrize(
    ("version", "target"),
    [
        ("3.4", (3, 4)),
        ("3.4.0", (3, 4)),
        ("3.4.7", (3, 4)),
        ("3.4.0-rc1", (3, 4)),
        ("3.4.2-rc.1+build", (3, 4)),
        ("3.4.0-", (3, 4)),
        ("3.4.0+", (3, 4)),
        ("3.4.0-a-b", (3, 4)),
        ("03.004", (3, 4)),
        ("3.5", (3, 5)),
        ("4.4", (4, 4)),
    ],
)
def test_versions_etcd_reads(version, target):
    assert parse_target(version) == target


@pytest.mark.parametrize(
    "version",
    [
        "x",
        "",
        "v3.4",
        "3",
        "3.4.0.1",
        " 3.4",
        "3.4-rc1",
        "3.4.0-a..b",
        "3.4.x",
        "3.9223372036854775808",
        "3.4+x",
        "3.4.0-é",
        "3.4.0+a+b",
        "+3.4",
        "3.4.0\n",
        "3.4.-1",
    ],
)
def test_versions_etcd_refuses(version):
    with pytest.raises(ERR_WRONG_VERSION_FORMAT):
        parse_target(version)

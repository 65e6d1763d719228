"""The power-cut filesystem itself: what was fsynced survives a cut, what was not is gone (file data and
directory entries alike), and the random-subset variant keeps some unsynced pages but never invents data."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.lazyfs import PAGE, LazyFSMount

# Skipped on a developer's machine without FUSE; never in CI (CI=true), where a missing FUSE must fail loudly.
pytestmark = pytest.mark.skipif(
    not (os.path.exists("/dev/fuse") and shutil.which("fusermount3") and os.geteuid() == 0)
    and not os.environ.get("CI"),
    reason="needs /dev/fuse, fusermount3 and root",
)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: str, data: bytes, offset: int = 0, sync: bool = False) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, data, offset)
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def test_a_cut_keeps_what_was_synced_and_drops_the_rest(tmp_path):
    store, mnt = str(tmp_path / "store"), str(tmp_path / "mnt")
    with LazyFSMount(store, mnt):
        os.mkdir(f"{mnt}/d")
        _fsync(mnt)
        _write(f"{mnt}/d/synced", b"a" * 5000, sync=True)
        _write(f"{mnt}/d/synced", b"UNSYNCED", offset=5000)  # past the synced end
        _write(f"{mnt}/d/synced", b"b", offset=0)  # over synced data
        _fsync(f"{mnt}/d")
        _write(f"{mnt}/d/name-not-synced", b"data", sync=True)  # its entry is never made durable
        os.rename(f"{mnt}/d/synced", f"{mnt}/d/renamed")  # nor is this rename
        assert sorted(os.listdir(f"{mnt}/d")) == ["name-not-synced", "renamed"]
    with LazyFSMount(store, mnt):
        assert os.listdir(f"{mnt}/d") == ["synced"]
        with open(f"{mnt}/d/synced", "rb") as f:
            assert f.read() == b"a" * 5000


def test_the_random_subset_variant_keeps_some_unsynced_pages_and_nothing_else(tmp_path):
    store, mnt = str(tmp_path / "store"), str(tmp_path / "mnt")
    pages = 64
    with LazyFSMount(store, mnt):
        _write(f"{mnt}/f", bytes(PAGE * pages), sync=True)
        _fsync(mnt)
    with LazyFSMount(store, mnt, keep_fraction=0.5, seed=3):
        for n in range(pages):
            _write(f"{mnt}/f", bytes([n + 1]) * PAGE, offset=n * PAGE)
    with LazyFSMount(store, mnt), open(f"{mnt}/f", "rb") as f:
        data = f.read()
    assert len(data) == PAGE * pages
    new = [n for n in range(pages) if data[n * PAGE : (n + 1) * PAGE] == bytes([n + 1]) * PAGE]
    old = [n for n in range(pages) if data[n * PAGE : (n + 1) * PAGE] == bytes(PAGE)]
    assert len(new) + len(old) == pages, "every page is either its synced or its unsynced content"
    assert 0 < len(new) < pages

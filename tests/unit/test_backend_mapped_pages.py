"""Backend.release_mapped_pages and ReadOnlyBackend.release_mapped_pages (etcdx/mvcc/backend.py): after a full
scan of a real LMDB file, the pages the scan mapped leave the process's RSS, and every row still reads back."""

from __future__ import annotations

import mmap
import os

import pytest

from etcdx.mvcc.backend import DATA_FILE, Backend, ReadOnlyBackend
from etcdx.mvcc.schema import KEY_DB
from tests.support.smaps import mapped_kib

ROWS = 20_000
VALUE = b"v" * 1000  # about 20 MiB of rows


def fill(path: str) -> None:
    backend = Backend(path, map_size=1 << 30, fsync=False)
    write = backend.begin_write()
    for i in range(ROWS):
        write.put(KEY_DB, b"%08d" % i, VALUE)
    write.commit()
    backend.close()


def scan_all(backend) -> int:
    with backend.begin_read() as view:
        return sum(len(value) for _, value in view.scan(KEY_DB))


@pytest.mark.parametrize("reader", ["member", "worker"])
def test_a_full_scans_pages_leave_the_rss_and_the_rows_stay(tmp_path, reader):
    path = str(tmp_path / "backend")
    fill(path)  # then opened again, so that the scan below maps the pages
    view = Backend(path, map_size=1 << 30, fsync=False) if reader == "member" else ReadOnlyBackend(path, 1 << 30)
    try:
        with view.begin_read() as open_during_release:
            assert scan_all(view) == ROWS * len(VALUE)
            data_file = os.path.join(path, DATA_FILE)
            before = mapped_kib(data_file)
            assert before > 15 * 1024, before
            assert view.release_mapped_pages() >= before * 1024
            assert mapped_kib(data_file) < 1024, mapped_kib(data_file)
            assert sum(len(value) for _, value in open_during_release.scan(KEY_DB)) == ROWS * len(VALUE)
        assert scan_all(view) == ROWS * len(VALUE)
    finally:
        view.close()


def test_a_private_map_of_the_file_keeps_its_own_pages(tmp_path):
    """Only shared maps are advised: a private (copy-on-write) map of the same file would lose the pages it
    changed, so it is left alone. A release that matched any map of the file's inode fails this."""
    path = str(tmp_path / "backend")
    fill(path)
    backend = Backend(path, map_size=1 << 30, fsync=False)
    data_file = os.path.join(path, DATA_FILE)
    with open(data_file, "rb") as f:
        private = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        scan_all(backend)
        private[:8] = b"changed!"
        backend.release_mapped_pages()
        assert private[:8] == b"changed!"
    finally:
        private.close()
        backend.close()

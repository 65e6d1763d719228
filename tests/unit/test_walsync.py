"""The WAL's sync worker (etcdx/_native/walsync_py.py states the contract), compiled and twin, on real files:
runs written in order at their offsets, fdatasync'ed when asked, the end of a job said on the eventfd, the first
failure (the kernel's, or an opener's exception) stopping the job and reported by ``take``.

The compiled module is imported directly: if it was not built, its tests fail instead of skipping."""

from __future__ import annotations

import os
import select
import threading

import pytest

from etcdx._native import _walsync, walsync_py

MODULES = [pytest.param(walsync_py, id="twin"), pytest.param(_walsync, id="compiled")]


@pytest.fixture(params=MODULES)
def worker(request):
    w = request.param.SyncWorker()
    yield w
    w.close()


def wait_outcome(worker, timeout: float = 10.0):
    """Waits on the eventfd as the event loop does, then takes the outcome."""
    readable, _, _ = select.select([worker.fileno()], [], [], timeout)
    assert readable, "the job did not end"
    outcome = worker.take()
    assert outcome is not None
    return outcome


def open_file(tmp_path, name: str = "segment", size: int = 4096) -> int:
    fd = os.open(tmp_path / name, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, size)
    return fd


def test_runs_are_written_at_their_offsets_and_fdatasynced(worker, tmp_path):
    a, b = open_file(tmp_path, "a"), open_file(tmp_path, "b")
    assert worker.take() is None  # no job yet
    worker.submit([(a, 10, b"hello", None), (b, 0, b"x" * 3000, None), (b, 3000, b"tail", None)], True)
    error, seconds = wait_outcome(worker)
    assert error is None
    assert len(seconds) == 3 and all(0 <= s < 10 for s in seconds)
    assert os.pread(a, 5, 10) == b"hello"
    assert os.pread(b, 3004, 0) == b"x" * 3000 + b"tail"
    assert worker.take() is None  # taken once
    worker.submit([(a, 0, b"again", None)], False)  # the next job, without fdatasync
    assert wait_outcome(worker) == (None, [])
    assert os.pread(a, 5, 0) == b"again"
    os.close(a)
    os.close(b)


def test_take_is_none_while_the_job_runs_and_a_second_submit_is_refused(worker, tmp_path):
    fd, release, threads = open_file(tmp_path), threading.Event(), []

    def opener() -> int:  # runs on the worker's thread, first in the job
        threads.append(threading.current_thread())
        assert release.wait(10)
        return fd

    worker.submit([(-1, 0, b"data", opener)], True)
    assert not select.select([worker.fileno()], [], [], 0.05)[0]
    assert worker.take() is None
    with pytest.raises(RuntimeError):
        worker.submit([(fd, 0, b"other", None)], True)
    release.set()
    error, seconds = wait_outcome(worker)
    assert error is None and len(seconds) == 1
    assert threads and threads[0] is not threading.current_thread()
    assert os.pread(fd, 4, 0) == b"data"
    os.close(fd)


def test_an_openers_exception_stops_the_job_and_is_reported(worker, tmp_path):
    fd = open_file(tmp_path)

    def opener() -> int:
        raise RuntimeError("injected: cannot create the segment")

    worker.submit([(fd, 0, b"first", None), (-1, 0, b"never", opener), (fd, 100, b"nor this", None)], True)
    error, seconds = wait_outcome(worker)
    assert isinstance(error, RuntimeError) and "injected" in str(error)
    assert len(seconds) == 1  # the first run's fdatasync, before the failure
    assert os.pread(fd, 5, 0) == b"first" and os.pread(fd, 8, 100) == b"\0" * 8
    os.close(fd)


def test_a_failed_write_stops_the_job_with_the_kernels_error(worker, tmp_path):
    fd = open_file(tmp_path)
    read_only = os.open(tmp_path / "segment", os.O_RDONLY)
    worker.submit([(read_only, 0, b"refused", None), (fd, 0, b"never", None)], True)
    error, seconds = wait_outcome(worker)
    assert isinstance(error, OSError) and error.errno == 9  # EBADF
    assert seconds == []
    assert os.pread(fd, 5, 0) == b"\0" * 5
    worker.submit([(fd, 0, b"after", None)], True)  # the worker goes on; the WAL is what stops for good
    assert wait_outcome(worker)[0] is None
    os.close(read_only)
    os.close(fd)


def test_close_waits_for_the_running_job(worker, tmp_path):
    fd, release = open_file(tmp_path), threading.Event()

    def opener() -> int:
        assert release.wait(10)
        return fd

    worker.submit([(-1, 0, b"written before close returns", opener)], True)
    threading.Timer(0.05, release.set).start()
    worker.close()
    assert os.pread(fd, 28, 0) == b"written before close returns"
    os.close(fd)

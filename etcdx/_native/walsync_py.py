"""The WAL's sync worker: write-and-fdatasync jobs run one at a time on a thread of their own, and each job's end
is said on an eventfd the event loop waits on (the pure-Python twin of _walsync.pyx, which is the same without
ever taking the GIL on that thread).

Contract:
- ``submit(runs, fsync)`` hands over one job and returns at once; the caller submits the next job only after
  ``take`` returned this one's outcome. ``runs`` is a list of ``(fd, offset, data, opener)``: each run's
  ``data`` (bytes) is written at ``offset`` of ``fd`` (pwrite, retried until all of it is written), then, if
  ``fsync``, the file is fdatasync'ed, before the next run starts. ``opener`` is None, or a callable that the
  worker thread calls first, and whose result is the run's fd (``fd`` is then ignored): a segment the job must
  create. The job stops at the first failure.
- ``fileno()`` is an eventfd that becomes readable when a job has ended.
- ``take()`` returns None while the job runs (or when none was submitted), else ``(error, seconds)``: the
  exception that stopped the job (an OSError for a failed write or fdatasync; whatever an opener raised) or
  None, and the duration in seconds of each fdatasync done, in order. It consumes the eventfd's signal.
- ``close()`` ends the thread once the running job (if any) has ended, and closes the eventfd.
"""

from __future__ import annotations

import os
import queue
import threading
import time


class SyncWorker:
    def __init__(self) -> None:
        self._done_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._jobs: queue.SimpleQueue[tuple[list, bool] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._running = False
        self._outcome: tuple[BaseException | None, list[float]] | None = None

    def fileno(self) -> int:
        return self._done_fd

    def submit(self, runs: list[tuple[int, int, bytes, object]], fsync: bool) -> None:
        if self._running:
            raise RuntimeError("walsync: a job is running")
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="etcdx-wal-sync", daemon=True)
            self._thread.start()
        self._running = True
        self._jobs.put((runs, fsync))

    def take(self) -> tuple[BaseException | None, list[float]] | None:
        if not self._running:
            return None
        try:
            os.eventfd_read(self._done_fd)
        except BlockingIOError:
            return None
        outcome, self._outcome, self._running = self._outcome, None, False
        return outcome

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        if self._done_fd >= 0:
            os.close(self._done_fd)
            self._done_fd = -1

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            runs, fsync = job
            seconds: list[float] = []
            error: BaseException | None = None
            try:
                for fd, offset, data, opener in runs:
                    if opener is not None:
                        fd = opener()
                    view = memoryview(data)
                    while view:
                        written = os.pwrite(fd, view, offset)
                        view, offset = view[written:], offset + written
                    if fsync:
                        started = time.perf_counter()
                        os.fdatasync(fd)
                        seconds.append(time.perf_counter() - started)
            except BaseException as exc:  # noqa: BLE001 - the job's outcome: the thread always reports back
                error = exc
            self._outcome = (error, seconds)
            os.eventfd_write(self._done_fd, 1)

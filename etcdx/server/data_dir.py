"""The data directory's guard: one member per directory, and directories whose names survive a power cut.

``locked(paths)`` takes an exclusive, non-blocking flock on each directory itself (the directory is opened, never
written: nothing inside is created, read or changed by taking the lock) before the member reads or writes
anything there, and holds it until the context exits or the process dies (the kernel drops it with the last
descriptor, so a crashed member never leaves a stale lock). A second process on the same directory gets
DataDirLockedError at once. The descriptors are close-on-exec, so no child inherits the lock.

``make_durable_dirs`` creates missing directories and fsyncs each new one's parent, so that a directory that was
reported created still exists after a power cut (a new directory entry is durable only once its parent is fsynced).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator


class DataDirLockedError(Exception):
    """Another process holds the lock on a data (or WAL) directory."""


@contextlib.contextmanager
def locked(*paths: str) -> Iterator[None]:
    """Creates (durably) and locks each distinct directory in ``paths``, in order; releases them on exit."""
    fds: list[int] = []
    try:
        seen: set[str] = set()
        for path in paths:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            make_durable_dirs(path)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise DataDirLockedError(
                        f"data directory {path!r} is in use: another etcdx member holds its lock"
                    ) from None
                raise
        yield
    finally:
        for fd in reversed(fds):
            os.close(fd)  # closing the last descriptor releases the flock


def make_durable_dirs(*paths: str) -> None:
    """Creates each missing directory of ``paths`` (and missing parents), fsyncing the parent of each one created."""
    for path in paths:
        missing: list[str] = []
        current = os.path.abspath(path)
        while not os.path.isdir(current):
            missing.append(current)
            current = os.path.dirname(current)
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, 0o700)
            fsync_dir(os.path.dirname(directory))


def fsync_dir(path: str) -> None:
    """Makes the entries of directory ``path`` (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

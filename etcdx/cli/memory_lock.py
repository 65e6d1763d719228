"""--experimental-memory-mlock: lock the process's memory in RAM (mlockall), as etcd does at start."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

MCL_CURRENT = 1


class MemoryLockError(Exception):
    """mlockall failed; the message says why (most often RLIMIT_MEMLOCK, or no CAP_IPC_LOCK)."""


def lock_current_memory() -> None:
    """Locks every page the process has mapped now (MCL_CURRENT). Not MCL_FUTURE: LMDB maps its whole
    map size (far beyond the data) up front, and locking that address space would fault it all in."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mlockall(MCL_CURRENT) != 0:
        errno = ctypes.get_errno()
        raise MemoryLockError(f"mlockall: {os.strerror(errno)} (errno {errno}; see RLIMIT_MEMLOCK / CAP_IPC_LOCK)")

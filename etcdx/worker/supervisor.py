"""The member's side of its read workers: starts each as `python -m etcdx read-worker ...` (a new process image:
LMDB is opened after exec, never across a fork), restarts one that exits (logged, after a backoff that doubles
from MIN_BACKOFF to MAX_BACKOFF and starts again once a worker ran RESET_AFTER seconds), and on cancellation
stops each by its PID (SIGTERM, then SIGKILL after STOP_TIMEOUT)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import trio

from etcdx.log import get_logger

log = get_logger("etcdx.worker")

MIN_BACKOFF = 0.1
MAX_BACKOFF = 5.0
RESET_AFTER = 10.0
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class WorkerPlan:
    """What the member needs to start its workers: how many, its private socket, its backend, and its own etcd
    flags (each worker parses them as the member did)."""

    count: int
    socket_path: str
    backend_path: str
    map_size: int
    etcd_argv: tuple[str, ...]
    automatic: bool = False  # the default count: the member serves from one process where workers cannot work


async def supervise(plan: WorkerPlan, member_pid: int, ports: list[int], on_exit: Callable[[], None]) -> None:
    """Runs ``plan.count`` workers on ``ports`` until cancelled; ``on_exit`` runs after each worker exits (the
    member clears the LMDB reader slots a killed worker left)."""
    async with trio.open_nursery() as nursery:
        for index in range(plan.count):
            argv = [
                sys.executable,
                "-m",
                "etcdx",
                "read-worker",
                str(index),
                str(member_pid),
                plan.socket_path,
                plan.backend_path,
                str(plan.map_size),
                ",".join(str(port) for port in ports),
                *plan.etcd_argv,
            ]
            nursery.start_soon(_keep_running, index, argv, on_exit)


async def _keep_running(index: int, argv: list[str], on_exit: Callable[[], None]) -> None:
    backoff = MIN_BACKOFF
    while True:
        started = trio.current_time()
        process = await trio.lowlevel.open_process(argv, stdin=subprocess.DEVNULL)
        log.info("read worker started", worker=index, pid=process.pid)
        try:
            code = await process.wait()
        finally:
            if process.returncode is None:
                await _stop(index, process)
        try:
            on_exit()
        except Exception as exc:  # a member between two backends (a snapshot install): nothing to clear
            log.warning("read worker: clearing its reader slots failed", worker=index, error=str(exc))
        if trio.current_time() - started >= RESET_AFTER:
            backoff = MIN_BACKOFF
        log.warning("read worker exited; restarting it", worker=index, pid=process.pid, code=code, after=backoff)
        await trio.sleep(backoff)
        backoff = min(2 * backoff, MAX_BACKOFF)


async def _stop(index: int, process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT):
            await process.wait()
            return
        log.warning("read worker did not stop; killing it", worker=index, pid=process.pid)
        process.kill()
        await process.wait()

"""What both proxy commands share: the listen address, and running until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Callable

import trio

from etcdx.log import configure, get_logger

log = get_logger("etcdx.proxy")


def parse_listen_addr(text: str) -> tuple[str, int]:
    """host:port, optionally with an http:// or https:// scheme (which says nothing here)."""
    item = text.removeprefix("http://").removeprefix("https://").rstrip("/")
    host, sep, port = item.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid listen address {text!r}: want host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def run_until_signal(serve, ready: Callable[[int], None], log_level: str = "info") -> int:
    """Runs ``serve`` (started with nursery.start; it reports the bound port) until SIGINT or SIGTERM."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
            port = await nursery.start(serve)
            ready(port)

    configure(log_level)
    failures: list[BaseException] = []
    try:
        trio.run(main)
    except* OSError as group:  # the listen address cannot be bound
        failures.extend(group.exceptions)
    if failures:
        log.error("cannot start", error=str(failures[0]))
        return 1
    return 0


async def _cancel_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received signal; shutting down", signal=signal.Signals(signum).name)
            scope.cancel()
            return

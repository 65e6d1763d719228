"""Splicing two byte streams: what each side sends, the other receives, until either side closes or fails;
then both copies end. The TCP gateway's connections (proxy/gateway.py) and a read worker's HTTP/1.1 relay
(worker/relay.py). The caller owns and closes both streams."""

from __future__ import annotations

import trio

COPY_SIZE = 64 * 1024


async def splice(a: trio.abc.Stream, b: trio.abc.Stream) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_copy, a, b, nursery.cancel_scope)
        nursery.start_soon(_copy, b, a, nursery.cancel_scope)


async def _copy(source: trio.abc.Stream, sink: trio.abc.Stream, scope: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(COPY_SIZE):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        scope.cancel()

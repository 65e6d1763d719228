"""HTTP/1.1 on a read worker: the connection is relayed byte for byte to the member's unix socket, so every HTTP
answer (/health, /metrics, /version, the /v3 JSON gateway, v2) is the member's own. When either side closes or
fails, both are closed."""

from __future__ import annotations

import trio

from etcdx.log import get_logger

log = get_logger("etcdx.worker")

COPY_SIZE = 64 * 1024


async def relay_http1(socket_path: str, client: trio.abc.Stream, head: bytes) -> None:
    """Relays ``client`` (whose first bytes, ``head``, were read already) to the member at ``socket_path``."""
    try:
        member = await trio.open_unix_socket(socket_path)
    except OSError as exc:
        log.warning("read worker: cannot reach the member for an HTTP connection", error=str(exc))
        return
    async with member, trio.open_nursery() as nursery:
        await member.send_all(head)
        nursery.start_soon(_copy, client, member, nursery.cancel_scope)
        nursery.start_soon(_copy, member, client, nursery.cancel_scope)


async def _copy(source: trio.abc.Stream, sink: trio.abc.Stream, scope: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(COPY_SIZE):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        scope.cancel()

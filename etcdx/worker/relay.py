"""HTTP/1.1 on a read worker: the connection is relayed byte for byte to the member's unix socket, so every HTTP
answer (/health, /metrics, /version, the /v3 JSON gateway, v2) is the member's own. When either side closes or
fails, both are closed. A connection from a TLS port (decrypted by the worker) goes to the member's second
socket, ``secure_http_path``, which answers as the member's TLS ports do (no Host check, as etcd)."""

from __future__ import annotations

import os

import trio

from etcdx.log import get_logger
from etcdx.net.splice import splice

log = get_logger("etcdx.worker")


def secure_http_path(socket_path: str) -> str:
    """The member's socket for HTTP/1.1 from TLS ports, ``https.sock`` beside ``socket_path`` (no longer a name)."""
    return os.path.join(os.path.dirname(socket_path), "https.sock")


async def relay_http1(socket_path: str, client: trio.abc.Stream, head: bytes) -> None:
    """Relays ``client`` (whose first bytes, ``head``, were read already) to the member at ``socket_path``."""
    try:
        member = await trio.open_unix_socket(socket_path)
    except OSError as exc:
        log.warning("read worker: cannot reach the member for an HTTP connection", error=str(exc))
        return
    async with member:
        await member.send_all(head)
        await splice(client, member)

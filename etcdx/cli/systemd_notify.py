"""systemd's readiness protocol (sd_notify): under ``Type=notify`` systemd waits for a ``READY=1`` datagram on the
AF_UNIX socket named by $NOTIFY_SOCKET (a leading ``@`` names an abstract socket) and kills a service that never
sends it. etcd sends it once it serves clients; so does etcdx, with etcd's log lines. Without $NOTIFY_SOCKET
there is nobody to tell, and etcd still logs success: so does this."""

from __future__ import annotations

import os
import socket

from etcdx.log import get_logger

log = get_logger("etcdx.cli")


def notify_ready() -> None:
    """Sends READY=1 to the service manager, if one listens. Never raises: a failure is logged (etcd goes on
    serving too, and systemd then gives up on the service by its own timeout)."""
    log.info("notifying init daemon")
    path = os.environ.get("NOTIFY_SOCKET", "")
    if path:
        address = "\0" + path[1:] if path.startswith("@") else path
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"READY=1", address)
        except OSError as exc:
            log.error("failed to notify init daemon", error=str(exc))
            return
    log.info("successfully notified init daemon")

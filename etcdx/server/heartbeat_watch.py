"""etcd's heartbeat timeout detector: a leader whose heartbeats to a peer are more than two heartbeat intervals
apart is overloaded (likely a slow disk holding up its Ready loop); each late heartbeat counts in
etcd_server_heartbeat_send_failures_total and is logged, as etcd logs it. Times are passed in."""

from __future__ import annotations

from collections.abc import Iterable

from etcdx.log import get_logger
from etcdx.raft.messages import MessageType
from etcdx.server import metrics

log = get_logger("etcdx.server")


class HeartbeatWatch:
    def __init__(self, heartbeat_interval: float) -> None:
        self._interval = heartbeat_interval
        self._last: dict[int, float] = {}  # peer id -> when the last heartbeat to it went out

    def reset(self) -> None:
        """Forgets every peer (this member just became leader)."""
        self._last.clear()

    def observe(self, messages: Iterable, now: float) -> None:
        for message in messages:
            if message.type is not MessageType.HEARTBEAT:
                continue
            last = self._last.get(message.to)
            self._last[message.to] = now
            if last is not None and now - last > 2 * self._interval:
                metrics.HEARTBEAT_SEND_FAILURES.inc()
                log.warning(
                    "leader failed to send out heartbeat on time; took too long, leader is overloaded likely from "
                    "slow disk",
                    to=f"{message.to:x}",
                    **{
                        "heartbeat-interval": f"{self._interval * 1000:g}ms",
                        "expected-duration": f"{2 * self._interval * 1000:g}ms",
                        "exceeded-duration": f"{(now - last - 2 * self._interval) * 1000:g}ms",
                    },
                )

"""What etcd's flags bound per gRPC connection, and the reset budget all connections share."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from etcdx.net.token_bucket import TokenBucket

# Stream resets by peers, all connections of the process together (each connection also has its own bucket).
SHARED_RESET_BURST, SHARED_RESET_RATE = 4000, 1000.0


@dataclass(frozen=True)
class GrpcLimits:
    """Limits from etcd's flags (durations in seconds; 0 disables the server's keepalive pings, as etcd sets
    ServerParameters only when both are above 0; a min time of 0 is grpc-go's default of 5 min), and the reset
    bucket that every connection served with this GrpcLimits shares."""

    max_concurrent_streams: int = 2**32 - 1
    keepalive_min_time: float = 5.0
    keepalive_interval: float = 2 * 3600.0
    keepalive_timeout: float = 20.0
    shared_resets: TokenBucket = field(
        default_factory=lambda: TokenBucket(SHARED_RESET_BURST, SHARED_RESET_RATE, trio.current_time),
        compare=False,
    )

    @property
    def ping_min_time(self) -> float:
        return self.keepalive_min_time if self.keepalive_min_time > 0 else 300.0

    @property
    def server_pings(self) -> bool:
        return self.keepalive_interval > 0 and self.keepalive_timeout > 0

"""etcd's member and cluster IDs (pure): a member's ID is derived from its peer URLs and the cluster token,
the cluster's from its members' IDs, so that they match an etcd cluster started with the same flags."""

from __future__ import annotations

import hashlib
import struct


def member_id(peer_urls: tuple[str, ...] | list[str], token: str) -> int:
    """etcd's member ID: SHA-1 over the sorted peer URLs concatenated, then the cluster token."""
    digest = hashlib.sha1(("".join(sorted(peer_urls)) + token).encode()).digest()
    return struct.unpack(">Q", digest[:8])[0]


def cluster_id(member_ids: list[int]) -> int:
    """etcd's cluster ID: SHA-1 over the sorted member IDs as 8-byte big-endian numbers."""
    digest = hashlib.sha1(b"".join(struct.pack(">Q", m) for m in sorted(member_ids))).digest()
    return struct.unpack(">Q", digest[:8])[0]

"""Reads a stopped member's WAL without changing it: the last HardState it holds (term, vote, commit)."""

from __future__ import annotations

from etcdx.pb.etcdxpb.raft_pb2 import HardState
from etcdx.wal.record import RecordType
from etcdx.wal.scan import scan_segment
from etcdx.wal.segment import list_segments


def last_hard_state(wal_dir: str) -> HardState:
    """The newest HardState record in the log (a torn tail after a crash is not read: it was never durable)."""
    found = HardState()
    segments = list_segments(wal_dir)
    for n, segment in enumerate(segments):
        with open(segment.path, "rb") as f:
            buf = f.read()
        for _, record_type, payload in scan_segment(segment.path, buf, is_last=n == len(segments) - 1).records:
            if record_type == RecordType.HARD_STATE:
                found = HardState.FromString(payload)
    return found

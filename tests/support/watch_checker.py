"""A watch-guarantee checker: judges what one watcher received against the store's true history.

History: revision -> [(event type, key, value)], as the writers were told by the server's answers.
A watcher segment (one watcher on one stream, from its creation until it was closed or the run
ended) must have received:
- ordered: events in revision order, and within a revision in the order of the writes;
- unique: no (revision, key) twice;
- no gaps: every event of its range from its start revision on, up to the last revision it saw
  (or to the end of the run if it stayed open), unless a compaction was reported first;
- atomic per revision: all of its events of one revision in one response;
- compaction reported: a compaction answer only with a revision above the next one it needed, and
  nothing after it.
Pure: no I/O. ``check`` returns a list of violations (empty = the watcher got exactly its due).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from etcdx.pb.etcdserverpb import rpc_pb2

PUT, DELETE = 0, 1


@dataclass
class Segment:
    key: bytes
    end: bytes | None  # None: single key; b"": every key >= key
    start_revision: int
    responses: list[rpc_pb2.WatchResponse] = field(default_factory=list)
    stayed_open: bool = True

    def matches(self, key: bytes) -> bool:
        if self.end is None:
            return key == self.key
        return self.key <= key and (not self.end or key < self.end)


def expected_events(history: dict[int, list[tuple[int, bytes, bytes]]], segment: Segment, last: int) -> list:
    return [
        (rev, etype, key, value)
        for rev in sorted(history)
        if segment.start_revision <= rev <= last
        for etype, key, value in history[rev]
        if segment.matches(key)
    ]


def check(history: dict[int, list[tuple[int, bytes, bytes]]], segment: Segment, final_revision: int) -> list[str]:
    violations: list[str] = []
    received: list[tuple[int, int, bytes, bytes]] = []
    seen_revisions: set[int] = set()
    compacted_at = None
    for response in segment.responses:
        if compacted_at is not None:
            violations.append("response after the compaction answer")
        if response.compact_revision:
            compacted_at = response.compact_revision
            continue
        revisions_here = []
        for event in response.events:
            rev = event.kv.mod_revision
            received.append((rev, event.type, event.kv.key, event.kv.value if event.type == PUT else b""))
            if not revisions_here or revisions_here[-1] != rev:
                revisions_here.append(rev)
        for rev in revisions_here:
            if rev in seen_revisions and not response.fragment:
                violations.append(f"revision {rev} split across responses")
            seen_revisions.add(rev)
    keys = [(r, k) for r, _, k, _ in received]
    if len(set(keys)) != len(keys):
        violations.append("an event was delivered twice")
    if [r for r, _, _, _ in received] != sorted(r for r, _, _, _ in received):
        violations.append("events out of revision order")
    last = received[-1][0] if received else segment.start_revision - 1
    if segment.stayed_open and compacted_at is None:
        last = final_revision
    expected = expected_events(history, segment, last)
    if compacted_at is not None:
        needed = received[-1][0] + 1 if received else segment.start_revision
        if needed >= compacted_at:
            violations.append(f"compaction {compacted_at} reported though revision {needed} was available")
        expected = [e for e in expected if e[0] < needed]
    if received != expected:
        missing = [e for e in expected if e not in received]
        extra = [e for e in received if e not in expected]
        if missing:
            violations.append(f"gap: {len(missing)} events missing, first {missing[0]}")
        if extra:
            violations.append(f"{len(extra)} events not in history, first {extra[0]}")
        if not missing and not extra and "an event was delivered twice" not in violations:
            violations.append("events in the wrong order")
    return violations

"""``etcdx wal repair``: the operator's explicit cut of a damaged log, keeping a copy of everything it cuts.

Start-up never cuts anything but a torn tail (etcdx/wal/scan.py); any other damage stops it and names the
segment and the offset. Repair then cuts the log at the first damaged record: the damaged segment is copied
whole into ``<wal dir>/repair-<UTC time>/`` and zeroed from that offset on, and every later segment is moved
there. What the cut drops is lost to the log: if the backend had applied any of it, start-up refuses
(backend ahead of the WAL) rather than serve a member whose log lost entries.
"""

from __future__ import annotations

import datetime
import os
import shutil
from dataclasses import dataclass, field

from etcdx.wal.scan import WalCorruptError, scan_segment
from etcdx.wal.segment import Segment, fsync_dir, list_segments, mapped


@dataclass
class RepairResult:
    """Where the log was cut (None: nothing to cut), why, and where the cut data was kept."""

    cut_path: str | None = None
    cut_offset: int = 0
    reason: str = ""
    backup_dir: str = ""
    moved: list[str] = field(default_factory=list)


def find_damage(directory: str) -> tuple[int, int, str] | None:
    """(position of the segment, offset, reason) of the first damage in the log (a torn tail counts), or
    None if the whole log reads cleanly. Reads every segment."""
    segments = list_segments(directory)
    for position, segment in enumerate(segments):
        if position and segment.seq != segments[position - 1].seq + 1:
            return position, 0, f"a segment is missing before {segment.path}"
        is_last = position == len(segments) - 1
        try:
            with open(segment.path, "rb") as f, mapped(f) as buf:
                scan = scan_segment(segment.path, buf, is_last=is_last)
        except WalCorruptError as exc:
            return position, exc.offset, exc.reason
        if scan.torn_end > scan.end:
            return position, scan.end, "torn tail"
    return None


def repair(directory: str, now: datetime.datetime | None = None) -> RepairResult:
    """Cuts the log in ``directory`` at its first damage (see the module docstring)."""
    damage = find_damage(directory)
    if damage is None:
        return RepairResult()
    position, offset, reason = damage
    segments = list_segments(directory)
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%SZ")
    backup_dir = os.path.join(directory, f"repair-{stamp}")
    os.makedirs(backup_dir)
    result = RepairResult(segments[position].path, offset, reason, backup_dir)
    damaged = segments[position]
    if offset > 0 or position == 0:
        _copy_durably(damaged, backup_dir)
        _zero_from(damaged.path, offset)
        later = segments[position + 1 :]
    else:
        later = segments[position:]
    for segment in later:
        target = os.path.join(backup_dir, segment.name)
        os.rename(segment.path, target)
        result.moved.append(target)
    fsync_dir(backup_dir)
    fsync_dir(directory)
    return result


def _copy_durably(segment: Segment, backup_dir: str) -> None:
    target = os.path.join(backup_dir, segment.name)
    shutil.copyfile(segment.path, target)
    with open(target, "rb+") as f:
        os.fsync(f.fileno())


def _zero_from(path: str, offset: int) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        remaining = size - offset
        while remaining > 0:
            chunk = min(remaining, 1 << 20)
            f.write(b"\0" * chunk)
            remaining -= chunk
        f.flush()
        os.fsync(f.fileno())

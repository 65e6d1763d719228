"""Reading a WAL segment back, and telling a torn tail from corruption.

The writer (etcdx/wal/wal.py) writes the log in jobs: one job is one run of pwrites and fdatasyncs on the
sync thread, and its first record is a SYNC_START record. Jobs run one at a time, so every byte written
before a SYNC_START was durable when that SYNC_START was written. A crash can therefore damage only the
last job of the last segment that holds data, and only in two shapes:

- a process killed inside a write leaves a prefix of the job, then zeros;
- a power cut leaves some sectors of the job unwritten (zeros), in any order.

The first damaged record at ``offset`` is a **torn tail** only if all of these hold, and it is cut there:

1. it is in the last segment;
2. its header is readable (no wholly zero sector in it) and then its length is at most MAX_RECORD_BYTES
   and the record ends inside the segment; or a sector of its header is zeros (a lost sector);
3. its bytes show a write that did not finish: its last byte is zero (a prefix followed by zeros), or a
   whole sector's share of it is zero (a sector the power cut lost);
4. no shorter length would make its checksum match (that would be a damaged length over a whole record);
5. no SYNC_START record follows it: nothing after it was written by a later job, so nothing from it on
   was ever acknowledged.

Anything else is corruption of data that may have been acknowledged: WalCorruptError names the segment
file and the offset, and nothing on disk is changed. Damage that looks exactly like an interrupted write
of the last job (a zeroed last sector, say) cannot be told from one, and is cut as one.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from etcdx.wal import record
from etcdx.wal.record import RecordType

SECTOR = 512
# No record the server writes comes near this (a request is at most --max-request-bytes); a longer length
# field is damage, whatever the file size.
MAX_RECORD_BYTES = 128 * 1024 * 1024
SYNC_START_RECORD = record.encode(RecordType.SYNC_START, b"")
# How far past the written data a damaged length's true record end may lie (its payload's trailing zeros).
_TRAILING_ZEROS_SLACK = 64
_HEADER = struct.Struct("<II")  # length, crc: the layout etcdx/wal/record.py documents


class WalCorruptError(Exception):
    """The log is damaged where it may hold acknowledged records: start-up stops, the files stay as they are.

    ``path`` and ``offset`` locate the first damaged byte range (``etcdx wal repair`` cuts the log there)."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"wal: corrupt record in {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


@dataclass
class SegmentScan:
    """What one segment holds: its records (offset, type, payload) in order, and where its data ends."""

    records: list[tuple[int, int, bytes]] = field(default_factory=list)
    end: int = 0  # offset after the last good record
    torn_end: int = 0  # > end when a torn tail lies in [end, torn_end) and must be cut


def scan_segment(path: str, buf: bytes, *, is_last: bool) -> SegmentScan:
    """Reads every record of ``buf`` (the whole segment file); raises WalCorruptError for damage that is
    not a torn tail (see the module docstring)."""
    scan = SegmentScan()
    offset = 0
    while True:
        decoded = record.decode_at(buf, offset)
        if decoded.kind == "record":
            scan.records.append((offset, decoded.record_type, decoded.payload))
            offset = decoded.next_offset
            continue
        scan.end = offset
        if decoded.kind == "end" and record.zeros_from(buf, decoded.next_offset):
            return scan  # only zeros follow: the data ends here
        written_end = _written_end(buf, offset)
        _check_torn(path, buf, offset, written_end, is_last)
        scan.torn_end = written_end
        return scan


def _check_torn(path: str, buf: bytes, offset: int, written_end: int, is_last: bool) -> None:
    """Raises WalCorruptError unless the damaged record at ``offset`` is a torn tail."""

    def corrupt(reason: str) -> WalCorruptError:
        return WalCorruptError(path, offset, reason)

    if not is_last:
        raise corrupt("damaged record in a segment that is not the last one")
    size = len(buf)
    if size - offset < record.HEADER_SIZE:
        raise corrupt(f"{size - offset} non-zero bytes at the end of the segment, too few for a record")
    length, crc = _HEADER.unpack_from(buf, offset)
    header_end = offset + record.HEADER_SIZE
    if not _has_zero_sector_share(buf, offset, header_end):
        if length > MAX_RECORD_BYTES:
            raise corrupt(f"record length {length} is over the cap of {MAX_RECORD_BYTES}")
        stop = header_end + length
        if stop > size:
            raise corrupt(f"record length {length} runs past the end of the segment ({size} bytes)")
        if buf[stop - 1] != 0 and not _has_zero_sector_share(buf, offset, stop):
            raise corrupt("record fails its checksum and is complete (not an interrupted write)")
        matched = _shorter_length_matching(buf, header_end, crc, min(stop, written_end + _TRAILING_ZEROS_SLACK))
        if matched is not None:
            raise corrupt(f"damaged length field: {length}, but the record's checksum matches length {matched}")
    mark = buf.find(SYNC_START_RECORD, offset + 1, written_end)
    if mark != -1:
        raise corrupt(f"damaged record with data of a later sync after it (at offset {mark})")


def _written_end(buf: bytes, start: int) -> int:
    """The offset after the last non-zero byte at or after ``start`` (``start`` if there is none)."""
    rest = buf[start:]
    return start + len(rest.rstrip(b"\0"))


def _has_zero_sector_share(buf: bytes, start: int, stop: int) -> bool:
    """Whether the part of [start, stop) in some SECTOR-aligned sector is all zeros (a sector not written)."""
    chunk_start = start
    while chunk_start < stop:
        chunk_stop = min(stop, (chunk_start // SECTOR + 1) * SECTOR)
        chunk = buf[chunk_start:chunk_stop]
        if chunk.count(0) == len(chunk):
            return True
        chunk_start = chunk_stop
    return False


def _shorter_length_matching(buf: bytes, body_start: int, crc: int, limit: int) -> int | None:
    """A length L (type + payload) with body_start + L <= limit whose bytes have checksum ``crc``, if any."""
    running = 0
    body = buf[body_start:limit]
    for length in range(1, len(body) + 1):
        running = zlib.crc32(body[length - 1 : length], running)
        if running == crc:
            return length
    return None

"""The write-ahead log: segments of records, group commit, torn-tail repair on open, release of old segments.

Durability contract: ``sync()`` (and ``wait_synced(start_sync())``) returns only once every record appended
before the call was written and fdatasync'ed. Group commit: one fdatasync covers every record appended while
the previous one ran. Writes and fdatasyncs run on the WAL's own sync thread (the sync worker, _native/walsync:
it takes no GIL for them), one job at a time in append order, so the event loop keeps serving; the worker says
a job ended on an eventfd, which the first waiter in ``wait_synced`` reads (no task of its own, no thread hand-off
back). ``start_sync`` never blocks, so a caller can do other work
(the server applies the previous batch) while the fsync runs. ``sync_inline`` is the other way, for a caller
with nothing to overlap: it writes and fdatasyncs on the calling thread while no job runs (one job at a time
still holds), which spares the two thread hand-offs (about 100 us) a lone write would wait for. Each job (and
each inline sync) starts with a SYNC_START record, which is what lets start-up tell a torn tail from corruption
(etcdx/wal/scan.py).

Fail-stop: anything the sync thread (or an inline sync) raises, OSError or not, fails that job and every later
one: nothing appended after the last good sync is ever called durable, and ``failure`` says why.

Files: segments (etcdx/wal/segment.py), each preallocated with zeros to ``segment_bytes``. The entry records
of one ``append`` are encoded into one buffer and stay together in one segment: a batch that does not fit in
the rest of the current segment starts the next one (a batch larger than ``segment_bytes`` gets a segment of
its own size).

The log's API is Raft-shaped: ``first_index``, ``last_index``, ``entries_from(index)``, ``term(index)``,
``release_to(index)``. Release removes whole segments, oldest first, only when every entry in them is
below the given index, and keeps at least ``max_segments`` segments (etcd's --max-wals; 0 keeps all).

Snapshot install (a follower given the leader's snapshot at index S): ``append_snapshot(S, term, hard_state)``
starts a new segment (first index S + 1) with a SNAPSHOT record and the HardState; once it is durable, the log
is "the snapshot at S, then what follows": a replay that reads past it forgets every entry before it (those
after S that it held too: they were not committed), and the entries after it continue from S + 1.
``drop_before_snapshot`` then removes the segments before it. Because a reset segment starts at S + 1, a
segment's first index may be lower than its predecessor's: reading starts at the last segment whose first
index is at or below the one wanted (reading from earlier is only slower; the SNAPSHOT record resets).
"""

from __future__ import annotations

import bisect
import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio
from google.protobuf.message import DecodeError

from etcdx._native import load
from etcdx.pb.etcdxpb.raft_pb2 import Entry, HardState
from etcdx.wal import record
from etcdx.wal.record import RecordType
from etcdx.wal.scan import MAX_RECORD_BYTES, SYNC_START_RECORD, WalCorruptError, scan_segment
from etcdx.wal.segment import (
    Segment,
    create_segment,
    fsync_dir,
    list_segments,
    mapped,
    segment_name,
    write_all,
)

SEGMENT_BYTES = 64 * 1024 * 1024
# A disk whose last fdatasync took longer than this (seconds) syncs on the thread only (sync_inline); a healthy
# SSD's fdatasync takes 0.1 to 1 ms.
INLINE_FSYNC_LIMIT = 0.002

_entrycodec = load("entrycodec")
_walsync = load("walsync")

__all__ = ["WAL", "WalCorruptError", "WalGapError", "WalReplay", "WalWriteError", "SEGMENT_BYTES", "last_snapshot"]


class LogEntry(Protocol):
    term: int
    index: int
    type: int
    data: bytes


class WalWriteError(Exception):
    """The log could not be made durable; the member must stop rather than acknowledge anything."""


class WalGapError(Exception):
    """The log misses entries it must hold (a missing segment, a jump in the indexes): start-up stops."""


@dataclass
class TornTail:
    """A torn tail cut at open: ``length`` bytes at ``offset`` of ``path``, copied to ``copy_path`` first."""

    path: str
    offset: int
    length: int
    copy_path: str


@dataclass
class WalReplay:
    """What the log holds: the last HardState and the entries after ``after_index``, in log order; ``snapshot``
    is the (index, term) of the last SNAPSHOT record read (the log restarts after it), or None."""

    hard_state: HardState | None = None
    snapshot: tuple[int, int] | None = None
    entries: list[Entry] = field(default_factory=list)
    last_index: int = 0
    segments_read: int = 0
    torn_tail: TornTail | None = None

    def add_entry(self, entry: Entry, after_index: int) -> None:
        """Raft semantics: an entry at an index <= the last one replaces the log from that index on."""
        if entry.index <= self.last_index and self.entries:
            cut = bisect.bisect_left([e.index for e in self.entries], entry.index)
            del self.entries[cut:]
        self.last_index = entry.index
        if entry.index > after_index:
            self.entries.append(entry)

    def add_snapshot(self, index: int, term: int) -> None:
        """A snapshot was installed at ``index``: every entry read so far is superseded."""
        self.snapshot = (index, term)
        self.entries = []
        self.last_index = index


class WAL:
    def __init__(
        self, directory: str, segments: list[Segment], last_index: int, segment_bytes: int, max_segments: int
    ) -> None:
        self.fsync = True  # False (--unsafe-no-fsync): records are written but never fdatasync'ed
        self._dir = directory
        self._segments = segments
        self._segment_bytes = segment_bytes
        self._max_segments = max_segments
        self._last_index = last_index
        self._pending: list[tuple[Segment, int, bytes]] = []
        self._appended = 0  # records appended so far
        self._synced = 0  # records known durable
        self._sync_running = False  # Invariant: True from a job's hand-off to the sync worker until _finish_job
        self._job_upto = 0  # the running job's target: records appended when it was launched
        self._job_bytes = 0  # the running job's record bytes
        self._collecting = False  # a waiter is reading the worker's eventfd (the others wait on _sync_done)
        self._sync_done = trio.Event()  # set (and replaced) each time a job finishes
        self._failed: BaseException | None = None
        self._worker = _walsync.SyncWorker()
        self._writing: Segment | None = None  # the segment whose fd is open for writing (opened on the sync thread)
        self._snapshot_segment: Segment | None = None  # the segment the last append_snapshot started
        self.fsync_count = 0
        self._last_fsync_seconds = 0.0  # the last fdatasync's duration, on either thread (see sync_inline)
        self.written_bytes = 0  # record bytes written (etcd_disk_wal_write_bytes_total)
        # Called with each fdatasync's duration in seconds, on the thread that ran it
        # (etcd_disk_wal_fsync_duration_seconds).
        self.observe_fsync: Callable[[float], None] = lambda seconds: None

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, directory: str, *, after_index: int = 0, segment_bytes: int = SEGMENT_BYTES, max_segments: int = 0
    ) -> tuple[WAL, WalReplay]:
        """Opens the log, reading only the segments that hold entries after ``after_index`` (and, if they hold
        no HardState, the ones before them until one does). Raises WalCorruptError or WalGapError and changes
        nothing on disk when the log is damaged; a torn tail is cut (a copy kept beside it)."""
        return await trio.to_thread.run_sync(cls._open_sync, directory, after_index, segment_bytes, max_segments)

    @classmethod
    def _open_sync(
        cls, directory: str, after_index: int, segment_bytes: int, max_segments: int
    ) -> tuple[WAL, WalReplay]:
        os.makedirs(directory, exist_ok=True)
        segments = list_segments(directory)
        replay = WalReplay()
        if not segments:
            if after_index:
                raise WalGapError(
                    f"wal: the backend is ahead of the WAL: it holds entries up to index {after_index}, "
                    f"the WAL in {directory} holds none"
                )
            segments.append(Segment(os.path.join(directory, segment_name(0, 1)), 0, 1, segment_bytes, 0))
            create_segment(segments[-1])
            fsync_dir(directory)
        else:
            _check_sequence(segments)
            start = _start_segment(segments, after_index + 1)
            if segments[start].first_index > after_index + 1:
                raise WalGapError(
                    f"wal: entries {after_index + 1} to {segments[start].first_index - 1} are missing: the backend "
                    f"is at index {after_index} and the oldest segment {segments[start].path} starts after them"
                )
            _read_segments(segments, start, replay, after_index)
            while replay.hard_state is None and start > 0:
                start -= 1
                hard_state_only = WalReplay()
                _read_segments(segments, start, hard_state_only, after_index, stop=start + 1)
                replay.hard_state = hard_state_only.hard_state
            if replay.last_index < after_index:
                raise WalGapError(
                    f"wal: the backend is ahead of the WAL: it holds entries up to index {after_index}, "
                    f"the WAL in {directory} ends at index {replay.last_index}"
                )
        last = segments[-1]
        last.fd = os.open(last.path, os.O_RDWR)
        wal = cls(directory, segments, replay.last_index, segment_bytes, max_segments)
        wal._writing = last
        return wal, replay

    # -- the Raft-shaped view ----------------------------------------------------------------

    @property
    def first_index(self) -> int:
        """The first index the log may still hold (the oldest segment's first index)."""
        return self._segments[0].first_index

    @property
    def last_index(self) -> int:
        return self._last_index

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def failure(self) -> BaseException | None:
        """Why the log cannot be written any more, or None while it can."""
        return self._failed

    async def entries_from(self, index: int) -> list[Entry]:
        """The entries at ``index`` and after that are written (read back from the files)."""
        segments = list(self._segments)
        start = _start_segment(segments, index)

        def read() -> list[Entry]:
            replay = WalReplay(last_index=segments[start].first_index - 1)
            for segment in segments[start:]:
                with open(segment.path, "rb") as f, mapped(f) as buf:
                    offset = 0
                    while (decoded := record.decode_at(buf, offset)).kind == "record":
                        if decoded.record_type == RecordType.ENTRY:
                            replay.add_entry(Entry.FromString(decoded.payload), index - 1)
                        elif decoded.record_type == RecordType.SNAPSHOT:
                            marker = Entry.FromString(decoded.payload)
                            replay.add_snapshot(marker.index, marker.term)
                        offset = decoded.next_offset
            return replay.entries

        return await trio.to_thread.run_sync(read)

    async def term(self, index: int) -> int | None:
        """The term of the entry at ``index``, or None if the log does not hold it."""
        found = await self.entries_from(index)
        return found[0].term if found and found[0].index == index else None

    async def release_to(self, index: int) -> list[str]:
        """Removes the oldest segments whose entries are all below ``index``, while more than ``max_segments``
        remain (0: keeps every segment); never the last one. Returns the removed files' paths.

        The caller guarantees nothing below ``index`` is needed any more: the state they lead to is durable
        elsewhere (the backend) and followers no longer need them."""
        victims: list[Segment] = []
        while (
            self._max_segments
            and len(self._segments) - len(victims) > self._max_segments
            and self._segments[len(victims) + 1].first_index <= index
        ):
            victims.append(self._segments[len(victims)])
        if not victims:
            return []
        # Dropped from the list first, so that nothing reads them while they go; the oldest goes first, so
        # a crash half-way leaves a log without a gap.
        self._segments = self._segments[len(victims) :]

        def remove() -> None:
            for segment in victims:
                os.remove(segment.path)
            fsync_dir(self._dir)

        await trio.to_thread.run_sync(remove)
        return [segment.path for segment in victims]

    # -- appending -------------------------------------------------------------------------

    def append(self, entries: Sequence[LogEntry], hard_state: HardState | None = None) -> None:
        """Encodes and buffers records; they become durable with the next ``sync()``. Never blocks. An entry is
        anything with etcdxpb.Entry's fields (the Raft core's entries; etcdxpb.Entry itself), written as the
        bytes etcdxpb.Entry serializes to (the entry codec encodes them without building a message).

        Raises OverflowError for a record over MAX_RECORD_BYTES (which start-up would call corruption)."""
        if entries:
            encode = _entrycodec.encode
            payloads = [encode(e.term, e.index, int(e.type), e.data) for e in entries]
            if max(map(len, payloads)) >= MAX_RECORD_BYTES:
                raise OverflowError(f"wal: an entry over {MAX_RECORD_BYTES} bytes")
            self._add(record.encode_many(RecordType.ENTRY, payloads), len(entries))
            self._last_index = entries[-1].index
        if hard_state is not None:
            self._add(record.encode(RecordType.HARD_STATE, hard_state.SerializeToString()), 1)

    def append_snapshot(self, index: int, term: int, hard_state: HardState) -> None:
        """Buffers the start of a new segment (first index ``index`` + 1) holding a SNAPSHOT record at
        (``index``, ``term``) and ``hard_state``: once synced, the log restarts after ``index`` (see the module
        docstring) and the next entry appended is ``index`` + 1. Nothing else may be pending."""
        if self._pending:
            raise RuntimeError("wal: append_snapshot with records pending")
        marker = Entry(term=term, index=index).SerializeToString()
        data = record.encode(RecordType.SNAPSHOT, marker) + record.encode(
            RecordType.HARD_STATE, hard_state.SerializeToString()
        )
        self._last_index = index
        self._add(data, 2, new_segment=True)
        self._snapshot_segment = self._segments[-1]

    async def drop_before_snapshot(self) -> list[str]:
        """Removes every segment older than the one the last ``append_snapshot`` started (call it once that
        one is durable and the state it leads to is in place); returns their paths, oldest first."""
        if self._snapshot_segment is None or self._snapshot_segment not in self._segments:
            return []
        keep = self._segments.index(self._snapshot_segment)
        victims, self._segments = self._segments[:keep], self._segments[keep:]

        def remove() -> None:
            for segment in victims:
                os.remove(segment.path)
            fsync_dir(self._dir)

        await trio.to_thread.run_sync(remove)
        return [segment.path for segment in victims]

    def _add(self, data: bytes, records: int, new_segment: bool = False) -> None:
        """Queues ``data`` (``records`` whole records) at the end of the log, in one segment (a new one if
        ``new_segment``); the first data of a job is preceded by a SYNC_START record."""
        if not self._pending:
            data = SYNC_START_RECORD + data
            records += 1
        segment = self._segments[-1]
        if new_segment or (segment.offset + len(data) > segment.size and segment.offset > 0):
            seq, first = segment.seq + 1, self._last_index + 1
            path = os.path.join(self._dir, segment_name(seq, first))
            segment = Segment(path, seq, first, max(self._segment_bytes, len(data)), 0)
            self._segments = [*self._segments, segment]
        self._pending.append((segment, segment.offset, data))
        segment.offset += len(data)
        self._appended += records

    async def sync(self) -> None:
        """Waits until every record appended before this call is durable (shares fsyncs with others)."""
        await self.wait_synced(self.start_sync())

    def start_sync(self) -> int:
        """Starts making every record appended so far durable unless a sync is running (a waiter starts the
        next one when it ends); returns the target to hand to ``wait_synced``. Never blocks."""
        if not self._sync_running and self._pending and self._failed is None:
            self._launch()
        return self._appended

    def sync_inline(self) -> bool:
        """Makes every record appended so far durable on the calling thread (the event loop), without the sync
        thread's two hand-offs, when that is safe and cheap: no job is running (so records stay in append order
        and the thread holds no file this would touch) and every pending record goes to a segment that is
        already open (creating and preallocating one is left to the thread). Returns True once they are written
        and fdatasync'ed (or nothing was pending), False when it did nothing (then use ``start_sync``). Blocks
        for the fdatasync: for a caller with nothing to overlap it with, as a lone proposal's Ready.

        While the disk is slow (the last fdatasync, inline or on the thread, took over INLINE_FSYNC_LIMIT), it
        does nothing and returns False: a stalling disk holds the event loop (reads, watches, keep-alives) for
        at most one such fsync; the thread's syncs go on measuring the disk, and inline syncs resume once one
        is fast again.

        Raises WalWriteError if the write or fdatasync failed: fail-stop, as a job that failed on the thread."""
        if self._failed is not None:
            raise WalWriteError(f"wal: write or fsync failed: {self._failed!r}") from self._failed
        if (
            self._sync_running
            or self._last_fsync_seconds > INLINE_FSYNC_LIMIT
            or any(segment.fd < 0 for segment, _, _ in self._pending)
        ):
            return False
        if self._pending:
            try:
                self._write_and_sync()
            except BaseException as exc:  # noqa: BLE001 - fail-stop, as _finish_job records a job's failure
                self._failed = exc
                raise WalWriteError(f"wal: write or fsync failed: {exc!r}") from exc
            self._synced = self._appended
        return True

    async def wait_synced(self, target: int) -> None:
        """Waits until the first ``target`` records appended are durable; raises WalWriteError if a write or
        fsync failed (then nothing appended after the last good sync is ever called durable)."""
        while self._synced < target:
            if self._failed is not None:
                raise WalWriteError(f"wal: write or fsync failed: {self._failed!r}") from self._failed
            if not self._sync_running:
                self._launch()
            await self._job_ended()

    async def _job_ended(self) -> None:
        """Waits for the running job to end. The first waiter reads the worker's outcome (once its eventfd is
        readable) and records it (_finish_job); the others wait for that. A reader cancelled meanwhile wakes
        the others, so that one of them reads instead."""
        if self._collecting:
            await self._sync_done.wait()
            return
        self._collecting = True
        try:
            while (outcome := self._worker.take()) is None:
                await trio.lowlevel.wait_readable(self._worker.fileno())
        except BaseException:
            self._wake_waiters()
            raise
        finally:
            self._collecting = False
        self._finish_job(*outcome)

    def _launch(self) -> None:
        """Hands every pending record to the sync worker as one job: one run of writes per segment, each
        fdatasync'ed (a segment is durable before the next one is created); a segment not created yet is
        created on the sync thread, first (_open_segment)."""
        self._sync_running = True
        runs = self._runs()
        self._job_upto = self._appended
        self._job_bytes = sum(len(data) for _, data in runs)
        self._worker.submit(
            [
                (segment.fd, offset, data, None if segment.fd >= 0 else functools.partial(self._open_segment, segment))
                for (segment, offset), data in runs
            ],
            self.fsync,
        )

    def _runs(self) -> list[tuple[tuple[Segment, int], bytes]]:
        """Takes the pending records, joined into one run per segment: ((segment, offset), data), in order."""
        pending, self._pending = self._pending, []
        runs: list[tuple[tuple[Segment, int], list[bytes]]] = []
        for segment, offset, data in pending:
            if runs and runs[-1][0][0] is segment:
                runs[-1][1].append(data)
            else:
                runs.append(((segment, offset), [data]))
        return [(where, b"".join(chunks)) for where, chunks in runs]

    def _open_segment(self, segment: Segment) -> int:
        """On the sync thread (a job's opener): creates and preallocates the segment, makes its name durable,
        and opens it for writing in place of the previous one; returns its fd."""
        create_segment(segment)
        fsync_dir(self._dir)
        segment.fd = os.open(segment.path, os.O_RDWR)
        previous, self._writing = self._writing, segment
        if previous is not None and previous.fd >= 0:
            os.close(previous.fd)
            previous.fd = -1
        return segment.fd

    def _finish_job(self, error: BaseException | None, seconds: list[float]) -> None:
        """On the event loop: records a job's outcome (error, each fdatasync's duration) and wakes its waiters."""
        self._sync_running = False
        self._record_fsyncs(seconds)
        if error is None and self._failed is None:
            self._synced = self._job_upto
            self.written_bytes += self._job_bytes
        elif self._failed is None:
            # After a failed fsync the kernel may have dropped the dirty pages: nothing appended
            # can be called durable any more, so every later sync fails too (the server stops).
            self._failed = error
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        done, self._sync_done = self._sync_done, trio.Event()
        done.set()

    def _write_and_sync(self) -> None:
        """sync_inline's job, on the calling thread: writes each segment's run of pending records, then
        fdatasyncs it (every segment is open: sync_inline creates none)."""
        for (segment, offset), data in self._runs():
            write_all(segment.fd, data, offset)
            if self.fsync:
                started = time.perf_counter()
                os.fdatasync(segment.fd)
                self._record_fsyncs([time.perf_counter() - started])
            self.written_bytes += len(data)

    def _record_fsyncs(self, seconds: list[float]) -> None:
        """Counts fdatasyncs that returned (inline or in a job) and observes their durations; the last one is
        what sync_inline's slow-disk check reads."""
        for duration in seconds:
            self.observe_fsync(duration)
        if seconds:
            self._last_fsync_seconds = seconds[-1]
            self.fsync_count += len(seconds)

    async def close(self) -> None:
        """Makes everything appended durable (unless the log failed: then nothing more is), then closes the
        files."""
        try:
            if self._failed is None:
                await self.sync()
        finally:
            trio.lowlevel.notify_closing(self._worker.fileno())
            await trio.to_thread.run_sync(self._worker.close)  # after the running job, if a cancelled sync left one
            for segment in self._segments:
                if segment.fd >= 0:
                    os.close(segment.fd)
                    segment.fd = -1


def last_snapshot(directory: str) -> tuple[int, int] | None:
    """The (index, term) of the newest segment in ``directory`` that ``append_snapshot`` started (its first
    records: SYNC_START, SNAPSHOT), or None; reads only the head of each segment, newest first."""
    if not os.path.isdir(directory):
        return None
    for segment in reversed(list_segments(directory)):
        with open(segment.path, "rb") as f, mapped(f) as buf:
            first = record.decode_at(buf, 0)
            if first.kind != "record" or first.record_type != RecordType.SYNC_START:
                continue
            second = record.decode_at(buf, first.next_offset)
            if second.kind == "record" and second.record_type == RecordType.SNAPSHOT:
                marker = Entry.FromString(second.payload)
                return marker.index, marker.term
    return None


def _check_sequence(segments: list[Segment]) -> None:
    """Segments count without gaps (a first index may go down: a snapshot's segment starts after it)."""
    for before, after in zip(segments, segments[1:], strict=False):
        if after.seq != before.seq + 1:
            raise WalGapError(f"wal: a segment is missing between {before.path} and {after.path}")


def _start_segment(segments: list[Segment], index: int) -> int:
    """The position of the last segment whose first index is at or below ``index`` (0 if none is): reading
    from there on finds every entry from ``index`` on."""
    for position in range(len(segments) - 1, -1, -1):
        if segments[position].first_index <= index:
            return position
    return 0


def _read_segments(
    segments: list[Segment], start: int, replay: WalReplay, after_index: int, stop: int | None = None
) -> None:
    """Replays segments[start:stop] into ``replay``: every segment's data end becomes its write offset, and a
    torn tail of the last segment is cut (copied aside first)."""
    replay.last_index = segments[start].first_index - 1
    for position in range(start, len(segments) if stop is None else stop):
        segment = segments[position]
        is_last = position == len(segments) - 1
        with open(segment.path, "rb") as f, mapped(f) as buf:
            scan = scan_segment(segment.path, buf, is_last=is_last)
            torn = bytes(buf[scan.end : scan.torn_end]) if scan.torn_end > scan.end else b""
        for offset, record_type, payload in scan.records:
            _apply_record(segment.path, offset, record_type, payload, replay, after_index)
        segment.offset = scan.end
        replay.segments_read += 1
        if torn:
            replay.torn_tail = _cut(segment.path, scan.end, torn)


def _apply_record(path: str, offset: int, record_type: int, payload: bytes, replay: WalReplay, after: int) -> None:
    if record_type == RecordType.ENTRY:
        try:
            entry = Entry.FromString(payload)
        except DecodeError as exc:
            raise WalCorruptError(path, offset, f"entry does not decode: {exc}") from exc
        if entry.index > replay.last_index + 1:
            raise WalGapError(
                f"wal: gap in the indexes in {path} at offset {offset}: entry {entry.index} follows {replay.last_index}"
            )
        replay.add_entry(entry, after)
    elif record_type == RecordType.SNAPSHOT:
        try:
            marker = Entry.FromString(payload)
        except DecodeError as exc:
            raise WalCorruptError(path, offset, f"snapshot record does not decode: {exc}") from exc
        replay.add_snapshot(marker.index, marker.term)
    elif record_type == RecordType.HARD_STATE:
        try:
            replay.hard_state = HardState.FromString(payload)
        except DecodeError as exc:
            raise WalCorruptError(path, offset, f"hard state does not decode: {exc}") from exc
    elif record_type != RecordType.SYNC_START:
        raise WalCorruptError(path, offset, f"unknown record type {record_type}")


def _cut(path: str, offset: int, torn: bytes) -> TornTail:
    """Copies the torn bytes to ``<segment>.torn-<offset>`` (durably), then zeroes them in the segment."""
    copy_path = f"{path}.torn-{offset}"
    with open(copy_path, "wb") as copy:
        copy.write(torn)
        copy.flush()
        os.fsync(copy.fileno())
    fsync_dir(os.path.dirname(path))
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * len(torn))
        f.flush()
        os.fsync(f.fileno())
    return TornTail(path, offset, len(torn), copy_path)

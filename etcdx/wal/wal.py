"""The write-ahead log: segments of records, group commit, torn-tail repair on open.

Durability contract: ``sync()`` (and ``wait_synced(start_sync())``) returns only once every record appended
before the call was written and fdatasync'ed. Group commit: one fdatasync covers every record appended while
the previous one ran. Writes and fdatasyncs run on the WAL's own sync thread, one job at a time in append
order, so the event loop keeps serving; the thread reports back with one ``run_sync_soon`` per job (cheaper
than a ``trio.to_thread`` round trip per fsync). ``start_sync`` never blocks, so a caller can do other work
(the server applies the previous batch) while the fsync runs.

Files: ``<seq:016x>-<first index:016x>.wal`` in the WAL directory, each preallocated with zeros to
``segment_bytes``. The entry records of one ``append`` are encoded into one buffer and stay together in
one segment: a batch that does not fit in the rest of the current segment starts the next one (a batch
larger than ``segment_bytes`` gets a segment of its own size). Only the last segment may end in a torn
record; anything damaged before valid data is corruption and stops start-up.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import queue
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import BinaryIO

import trio

from etcdx.pb.etcdxpb.raft_pb2 import Entry, HardState
from etcdx.wal import record
from etcdx.wal.record import RecordType

SEGMENT_BYTES = 64 * 1024 * 1024


class WalCorruptError(Exception):
    """A damaged record with valid data after it: the log cannot be trusted past this point."""


class WalWriteError(Exception):
    """The log could not be made durable; the member must stop rather than acknowledge anything."""


@dataclass
class WalReplay:
    """What the log holds: the last HardState and the entries after ``after_index``, in log order."""

    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    last_index: int = 0

    def add_entry(self, entry: Entry, after_index: int) -> None:
        """Raft semantics: an entry at an index <= the last one replaces the log from that index on."""
        if entry.index <= self.last_index and self.entries:
            cut = bisect.bisect_left([e.index for e in self.entries], entry.index)
            del self.entries[cut:]
        self.last_index = entry.index
        if entry.index > after_index:
            self.entries.append(entry)


@dataclass
class _Segment:
    path: str
    size: int
    offset: int  # where the next record goes (after everything appended, synced or not)
    fd: int = -1  # -1 until the file exists on disk


def _segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}.wal"


def _parse_name(name: str) -> tuple[int, int] | None:
    stem, dot, ext = name.partition(".")
    seq, dash, first = stem.partition("-")
    if ext != "wal" or not dash:
        return None
    try:
        return int(seq, 16), int(first, 16)
    except ValueError:
        return None


class WAL:
    def __init__(self, directory: str, segments: list[_Segment], last_index: int, segment_bytes: int) -> None:
        self._dir = directory
        self._segments = segments
        self._segment_bytes = segment_bytes
        self._last_index = last_index
        self._pending: list[tuple[_Segment, int, bytes]] = []
        self._appended = 0  # records appended so far
        self._synced = 0  # records known durable
        self._sync_running = False  # Invariant: True from a job's hand-off to the sync thread until _finish_job
        self._sync_done = trio.Event()  # set (and replaced) each time a job finishes
        self._failed: OSError | None = None
        self._jobs: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.fsync_count = 0

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, directory: str, *, after_index: int = 0, segment_bytes: int = SEGMENT_BYTES
    ) -> tuple[WAL, WalReplay]:
        return await trio.to_thread.run_sync(cls._open_sync, directory, after_index, segment_bytes)

    @classmethod
    def _open_sync(cls, directory: str, after_index: int, segment_bytes: int) -> tuple[WAL, WalReplay]:
        os.makedirs(directory, exist_ok=True)
        names = sorted((parsed, name) for name in os.listdir(directory) if (parsed := _parse_name(name)))
        replay = WalReplay()
        segments: list[_Segment] = []
        for position, (_, name) in enumerate(names):
            path = os.path.join(directory, name)
            is_last = position == len(names) - 1
            end = _read_segment(path, replay, after_index, is_last)
            size = os.path.getsize(path)
            segments.append(_Segment(path=path, size=size, offset=end))
        if not segments:
            segments.append(_Segment(os.path.join(directory, _segment_name(0, 1)), segment_bytes, 0))
            _create_segment(segments[-1])
            _fsync_dir(directory)
        last = segments[-1]
        last.fd = os.open(last.path, os.O_RDWR)
        return cls(directory, segments, replay.last_index, segment_bytes), replay

    # -- appending -------------------------------------------------------------------------

    def append(self, entries: Sequence[Entry], hard_state: HardState | None = None) -> None:
        """Encodes and buffers records; they become durable with the next ``sync()``. Never blocks."""
        if entries:
            self._add(
                record.encode_many(RecordType.ENTRY, [entry.SerializeToString() for entry in entries]), len(entries)
            )
            self._last_index = entries[-1].index
        if hard_state is not None:
            self._add(record.encode(RecordType.HARD_STATE, hard_state.SerializeToString()), 1)

    def _add(self, data: bytes, records: int) -> None:
        """Queues ``data`` (``records`` whole records) at the end of the log, in one segment."""
        segment = self._segments[-1]
        if segment.offset + len(data) > segment.size and segment.offset > 0:
            seq = _parse_name(os.path.basename(segment.path))[0] + 1
            path = os.path.join(self._dir, _segment_name(seq, self._last_index + 1))
            segment = _Segment(path=path, size=max(self._segment_bytes, len(data)), offset=0)
            self._segments.append(segment)
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

    async def wait_synced(self, target: int) -> None:
        """Waits until the first ``target`` records appended are durable; raises WalWriteError if a write or
        fsync failed (then nothing appended after the last good sync is ever called durable)."""
        while self._synced < target:
            if self._failed is not None:
                raise WalWriteError("wal: an earlier write or fsync failed; nothing more is durable") from self._failed
            if not self._sync_running:
                self._launch()
            await self._sync_done.wait()

    def _launch(self) -> None:
        """Hands every pending record to the sync thread as one job."""
        self._sync_running = True
        pending, self._pending = self._pending, []
        if self._thread is None:
            self._thread = threading.Thread(target=self._sync_thread, name="etcdx-wal-sync", daemon=True)
            self._thread.start()
        self._jobs.put((pending, self._appended, trio.lowlevel.current_trio_token()))

    def _sync_thread(self) -> None:
        """The sync thread: runs jobs in order until the None that ``close`` sends."""
        while (job := self._jobs.get()) is not None:
            pending, upto, token = job
            error: OSError | None = None
            try:
                self._write_and_sync(pending)
            except OSError as exc:
                error = exc
            # RunFinishedError: nobody waits any more, the trio run that started the job has ended.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._finish_job, upto, error)

    def _finish_job(self, upto: int, error: OSError | None) -> None:
        """On the event loop: records a job's outcome and wakes its waiters."""
        self._sync_running = False
        if error is None:
            self._synced = upto
        elif self._failed is None:
            # After a failed fsync the kernel may have dropped the dirty pages: nothing appended
            # can be called durable any more, so every later sync fails too (the server stops).
            self._failed = error
        done, self._sync_done = self._sync_done, trio.Event()
        done.set()

    def _write_and_sync(self, pending: list[tuple[_Segment, int, bytes]]) -> None:
        """Runs on the sync thread: writes each segment's run of records, then fdatasyncs them in order."""
        runs: list[tuple[_Segment, int, list[bytes]]] = []
        for segment, offset, data in pending:
            if runs and runs[-1][0] is segment:
                runs[-1][2].append(data)
            else:
                runs.append((segment, offset, [data]))
        created = False
        for segment, offset, chunks in runs:
            if segment.fd < 0:
                _create_segment(segment)
                segment.fd = os.open(segment.path, os.O_RDWR)
                created = True
            _write_all(segment.fd, b"".join(chunks), offset)
            os.fdatasync(segment.fd)
        if created:
            _fsync_dir(self._dir)
            for segment in self._segments[:-1]:
                if segment.fd >= 0:
                    os.close(segment.fd)
                    segment.fd = -1
        self.fsync_count += len(runs)

    async def close(self) -> None:
        """Makes everything appended durable, then closes the files."""
        try:
            await self.sync()
        finally:
            if self._thread is not None:
                self._jobs.put(None)
                await trio.to_thread.run_sync(self._thread.join)
                self._thread = None
            for segment in self._segments:
                if segment.fd >= 0:
                    os.close(segment.fd)
                    segment.fd = -1

    @property
    def last_index(self) -> int:
        return self._last_index


def _write_all(fd: int, data: bytes, offset: int) -> None:
    """pwrite until every byte is written (a short write is legal for the kernel)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _create_segment(segment: _Segment) -> None:
    fd = os.open(segment.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, segment.size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_segment(path: str, replay: WalReplay, after_index: int, is_last: bool) -> int:
    """Replays one segment into ``replay``; returns the offset where its data ends.

    In the last segment a damaged record followed only by zeros is a torn write: it is zeroed on
    disk and the log ends before it. Any other damage raises WalCorruptError.
    """
    with open(path, "rb") as f, _mapped(f) as buf:
        offset = 0
        while True:
            decoded = record.decode_at(buf, offset)
            if decoded.kind == "record":
                _apply_record(decoded, replay, after_index, path, offset)
                offset = decoded.next_offset
                continue
            rest_is_zero = record.zeros_from(buf, decoded.next_offset)
            if decoded.kind == "end" and rest_is_zero:
                return offset
            if decoded.kind == "bad" and is_last and rest_is_zero:
                with open(path, "r+b") as torn:
                    torn.seek(offset)
                    torn.write(b"\0" * (decoded.next_offset - offset))
                    torn.flush()
                    os.fsync(torn.fileno())
                return offset
            raise WalCorruptError(f"wal: corrupt record in {path} at offset {offset}")


def _mapped(f: BinaryIO) -> AbstractContextManager[bytes | mmap.mmap]:
    """The whole file read-only, mapped rather than copied (a segment is mostly preallocated zeros)."""
    if os.fstat(f.fileno()).st_size == 0:
        return nullcontext(b"")  # mmap refuses an empty file
    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _apply_record(decoded: record.Decoded, replay: WalReplay, after_index: int, path: str, offset: int) -> None:
    if decoded.record_type == RecordType.ENTRY:
        replay.add_entry(Entry.FromString(decoded.payload), after_index)
    elif decoded.record_type == RecordType.HARD_STATE:
        replay.hard_state = HardState.FromString(decoded.payload)
    else:
        raise WalCorruptError(f"wal: unknown record type {decoded.record_type} in {path} at offset {offset}")

"""WAL segment files: their names, creation and the blocking file operations on them.

A segment is ``<seq:016x>-<first index:016x>.wal``: ``seq`` counts segments from 0 without gaps (a release
removes only the oldest ones), ``first index`` is the index the first entry written into it was to have
(the log's last index + 1 when it was created). Segments are preallocated with zeros, so the data of a
segment ends where only zeros follow.
"""

from __future__ import annotations

import mmap
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import BinaryIO


@dataclass
class Segment:
    path: str
    seq: int
    first_index: int
    size: int
    offset: int  # where the next record goes (after everything appended, synced or not)
    fd: int = -1  # -1 until the sync thread opens it for writing

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}.wal"


def parse_name(name: str) -> tuple[int, int] | None:
    """(seq, first index) of a segment file name, or None for any other file."""
    stem, dot, ext = name.partition(".")
    seq, dash, first = stem.partition("-")
    if ext != "wal" or not dash or len(seq) != 16 or len(first) != 16:
        return None
    try:
        return int(seq, 16), int(first, 16)
    except ValueError:
        return None


def list_segments(directory: str) -> list[Segment]:
    """The segments of ``directory`` in seq order (offset 0: not read yet)."""
    found = sorted((parsed, name) for name in os.listdir(directory) if (parsed := parse_name(name)))
    segments = []
    for (seq, first_index), name in found:
        path = os.path.join(directory, name)
        segments.append(Segment(path=path, seq=seq, first_index=first_index, size=os.path.getsize(path), offset=0))
    return segments


def write_all(fd: int, data: bytes, offset: int) -> None:
    """pwrite until every byte is written (a short write is legal for the kernel)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def create_segment(segment: Segment) -> None:
    """Creates the file preallocated with zeros and fsyncs it (the caller fsyncs the directory)."""
    fd = os.open(segment.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, segment.size)
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mapped(f: BinaryIO) -> AbstractContextManager[bytes | mmap.mmap]:
    """The whole file read-only, mapped rather than copied (a segment is mostly preallocated zeros)."""
    if os.fstat(f.fileno()).st_size == 0:
        return nullcontext(b"")  # mmap refuses an empty file
    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

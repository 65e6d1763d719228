"""A pure, read-only reader of a bbolt file held in memory (etcd's backend database, as `etcdctl snapshot
save` writes it). Pure: it takes the file's bytes (or an mmap), never opens anything.

The format (little-endian throughout):
- Every page starts with a 16-byte header: page id u64, flags u16 (branch 0x01, leaf 0x02, meta 0x04,
  freelist 0x10), element count u16, overflow u32 (the page spans 1 + overflow pages of the page size).
- Pages 0 and 1 are meta pages: magic u32 0xED0CDAED, version u32 2, page size u32, flags u32, the root
  bucket (root page id u64, sequence u64), freelist page id u64, high-water page id u64, txid u64, and
  an FNV-1a 64 checksum of the 56 bytes before it. The valid one with the higher txid is current.
- A branch page holds ``count`` 16-byte elements (pos u32, key size u32, child page id u64); a leaf page
  ``count`` 16-byte elements (flags u32, pos u32, key size u32, value size u32). ``pos`` is counted from
  the element's own start; the value follows the key. Leaf flag 0x01 marks a nested bucket: its value is
  a bucket header (root page id u64, sequence u64), and a root page id of 0 means an inline bucket whose
  single leaf page follows the header inside the value.
- The root bucket's leaf elements with the bucket flag are the top-level buckets (etcd's "key", "meta",
  "lease", ...). Keys are kept in byte order within every page, and pages in order across a tree.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

MAGIC = 0xED0CDAED
VERSION = 2
BRANCH, LEAF, META = 0x01, 0x02, 0x04
BUCKET_LEAF = 0x01
_PAGE_HEAD = struct.Struct("<QHHI")
_META = struct.Struct("<IIIIQQQQQQ")
_BRANCH_ELEM = struct.Struct("<IIQ")
_LEAF_ELEM = struct.Struct("<IIII")
_BUCKET = struct.Struct("<QQ")
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3
_MAX_DEPTH = 64  # deeper than any real tree: a cycle of branch pages in a damaged file stops here
_META_CHECKED = 56  # the meta bytes before the checksum, which it covers


class BoltError(ValueError):
    """The bytes are not a bbolt file this reader understands (or are damaged)."""


def _fnv64a(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


class BoltFile:
    """The current state of a bbolt file: its top-level buckets and their rows."""

    def __init__(self, data: bytes | memoryview) -> None:
        self._data = memoryview(data)
        metas = [m for m in (self._meta_at(0, 4096), self._meta_at(1, None)) if m is not None]
        if not metas:
            raise BoltError("bbolt: no valid meta page (not a bbolt file, or damaged)")
        meta = max(metas, key=lambda m: m[8])
        self.page_size, self.txid, self.high_water = meta[2], meta[8], meta[7]
        self._root = meta[4]
        if len(self._data) < self.high_water * self.page_size:
            raise BoltError("bbolt: file is shorter than its pages (truncated)")

    def _meta_at(self, index: int, page_size: int | None) -> tuple | None:
        """Meta page ``index`` if it is valid. Page 1's offset needs the page size, read from page 0's
        fields even when page 0's checksum fails (its page size field is then trusted only if sane)."""
        if page_size is None:
            first = self._data[_PAGE_HEAD.size : _PAGE_HEAD.size + _META.size]
            if len(first) < _META.size:
                return None
            page_size = _META.unpack(first)[2]
            if page_size < 512 or page_size & (page_size - 1):
                return None
        start = index * page_size + _PAGE_HEAD.size
        raw = bytes(self._data[start : start + _META.size])
        if len(raw) < _META.size:
            return None
        _, flags, _, _ = _PAGE_HEAD.unpack_from(self._data, index * page_size)
        fields = _META.unpack(raw)
        if flags != META or fields[0] != MAGIC or fields[1] != VERSION or fields[9] != _fnv64a(raw[:_META_CHECKED]):
            return None
        return fields

    def _page(self, pgid: int) -> tuple[int, int, int]:
        """(offset, flags, count) of page ``pgid``."""
        if pgid < 2 or pgid >= self.high_water:
            raise BoltError(f"bbolt: page {pgid} out of range")
        offset = pgid * self.page_size
        page_id, flags, count, _ = _PAGE_HEAD.unpack_from(self._data, offset)
        if page_id != pgid:
            raise BoltError(f"bbolt: page {pgid} says it is page {page_id}")
        return offset, flags, count

    def _rows(self, offset: int, flags: int, count: int, depth: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
        """Every (leaf flags, key, value) under the page at ``offset`` in key order (recursing into branch
        children; ``offset`` may point inside a bucket value for an inline page)."""
        data = self._data
        if depth > _MAX_DEPTH:
            raise BoltError("bbolt: tree deeper than any real one (a cycle of pages?)")
        if flags & BRANCH:
            for i in range(count):
                elem = offset + _PAGE_HEAD.size + i * _BRANCH_ELEM.size
                child = _BRANCH_ELEM.unpack_from(data, elem)[2]
                yield from self._rows(*self._page(child), depth + 1)
        elif flags & LEAF:
            for i in range(count):
                elem = offset + _PAGE_HEAD.size + i * _LEAF_ELEM.size
                leaf_flags, pos, ksize, vsize = _LEAF_ELEM.unpack_from(data, elem)
                key_at = elem + pos
                if key_at + ksize + vsize > len(data):
                    raise BoltError("bbolt: element past the end of the file")
                value_at = key_at + ksize
                yield leaf_flags, bytes(data[key_at:value_at]), bytes(data[value_at : value_at + vsize])
        else:
            raise BoltError(f"bbolt: page at {offset} is neither a branch nor a leaf (flags {flags:#x})")

    def _bucket_rows(self, root: int, inline: memoryview | None) -> Iterator[tuple[int, bytes, bytes]]:
        if root:
            return self._rows(*self._page(root))
        if inline is None or len(inline) < _PAGE_HEAD.size:
            return iter(())
        # An inline page lives inside a bucket value: read it as its own small buffer.
        sub = BoltFile.__new__(BoltFile)
        sub._data = inline
        _, flags, count, _ = _PAGE_HEAD.unpack_from(inline, 0)
        if flags != LEAF:
            raise BoltError(f"bbolt: an inline bucket's page is not a leaf (flags {flags:#x})")
        return sub._rows(0, flags, count)

    def buckets(self) -> dict[bytes, tuple[int, bytes]]:
        """Top-level bucket name -> (root page id, its bucket value). BoltError for a damaged tree."""
        found = {}
        try:
            for leaf_flags, key, value in self._rows(*self._page(self._root)):
                if leaf_flags & BUCKET_LEAF:
                    found[key] = (_BUCKET.unpack_from(value)[0], value)
        except (struct.error, IndexError) as exc:
            raise BoltError(f"bbolt: damaged page: {exc}") from exc
        return found

    def items(self, bucket: bytes) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of top-level ``bucket`` in key order (nested buckets are skipped); none if
        there is no such bucket. BoltError for a damaged tree."""
        entry = self.buckets().get(bucket)
        if entry is None:
            return []
        root, value = entry
        inline = memoryview(value)[_BUCKET.size :] if root == 0 else None
        try:
            return [(key, val) for flags, key, val in self._bucket_rows(root, inline) if not flags & BUCKET_LEAF]
        except (struct.error, IndexError) as exc:
            raise BoltError(f"bbolt: damaged page in bucket {bucket!r}: {exc}") from exc

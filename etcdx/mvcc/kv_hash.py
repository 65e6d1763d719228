"""etcd's consistency hashes (Maintenance.Hash and HashKV): CRC-32C (Castagnoli) over stored rows. Pure.

- ``backend_hash``: every table in name order (as bbolt orders its buckets): the table name, then each
  row's key and value, leaving out the meta rows a member changes on its own (consistent index, term).
- ``kv_hash``: the key table up to a revision: its name, then the key (etcd's 17/18-byte revision key) and
  value (a serialized mvccpb.KeyValue) of every row with main revision <= ``rev``; rows at or below the
  compacted revision count only if ``keep`` (what a compaction at ``rev`` would keep) holds them, unless
  ``keep`` is empty. As the rows are etcd's bytes, the value equals etcd's for the same history.
"""

from __future__ import annotations

import crc32c

from etcdx.mvcc.revision import last_of_main, parse_backend_key
from etcdx.mvcc.schema import KEY_DB, META_CONSISTENT_INDEX, META_DB, META_TERM, TABLES
from etcdx.mvcc.tables import TableView

_IGNORED_META = (META_CONSISTENT_INDEX, META_TERM)


def backend_hash(view: TableView) -> int:
    crc = 0
    for name in sorted(TABLES):
        crc = crc32c.crc32c(name, crc)
        for key, value in view.scan(name):
            if name == META_DB and key in _IGNORED_META:
                continue
            crc = crc32c.crc32c(value, crc32c.crc32c(key, crc))
    return crc


def kv_hash(view: TableView, rev: int, compact_rev: int, keep: set[int]) -> int:
    upper = last_of_main(rev)
    lower = last_of_main(compact_rev)  # rows <= lower are below etcd's revision{main: compact_rev + 1}
    crc = crc32c.crc32c(KEY_DB)
    for key, value in view.scan(KEY_DB):
        packed, _ = parse_backend_key(key)
        if packed > upper:
            break
        if packed <= lower and keep and packed not in keep:
            continue
        crc = crc32c.crc32c(value, crc32c.crc32c(key, crc))
    return crc

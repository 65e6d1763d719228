"""Names in the backend, as etcd's bbolt layout names them (sub-databases and meta keys)."""

KEY_DB = b"key"
META_DB = b"meta"
LEASE_DB = b"lease"
ALARM_DB = b"alarm"
META_CONSISTENT_INDEX = b"consistent_index"
META_SCHEDULED_COMPACT = b"scheduledCompactRev"
META_FINISHED_COMPACT = b"finishedCompactRev"
META_V2_STORE = b"v2store"  # the v2 store's state (etcdx; etcd keeps it in its snapshot files)

"""Names in the backend, as etcd's bbolt layout names them (sub-databases and meta keys)."""

KEY_DB = b"key"
META_DB = b"meta"
LEASE_DB = b"lease"
ALARM_DB = b"alarm"
META_CONSISTENT_INDEX = b"consistent_index"
META_TERM = b"term"  # the term of the entry at the consistent index (etcd 3.5 keeps it under this name)
META_SCHEDULED_COMPACT = b"scheduledCompactRev"
META_FINISHED_COMPACT = b"finishedCompactRev"

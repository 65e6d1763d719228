"""Names in the backend, as etcd's bbolt layout names them (tables and meta keys)."""

KEY_DB = b"key"  # revision key (revision.backend_key) -> serialized mvccpb.KeyValue
META_DB = b"meta"  # the meta keys below -> offset-encoded int64 (rows.py)
LEASE_DB = b"lease"  # lease id -> granted TTL
ALARM_DB = b"alarm"  # member id + alarm type of each active alarm -> b""
MEMBERS_DB = b"members"  # member id (u64 big-endian) -> serialized etcdserverpb.Member (ID, name, peerURLs, ...)
AUTH_DB = b"auth"  # the auth store's records (etcdx.auth.records): enabled flag, auth revision, users, roles
TABLES = (KEY_DB, META_DB, LEASE_DB, ALARM_DB, MEMBERS_DB, AUTH_DB)  # every table a backend holds, in image order
META_CONSISTENT_INDEX = b"consistent_index"
META_TERM = b"term"  # the term of the entry at the consistent index (etcd 3.5 keeps it under this name)
META_SCHEDULED_COMPACT = b"scheduledCompactRev"
META_FINISHED_COMPACT = b"finishedCompactRev"
META_CLUSTER_VERSION = b"clusterVersion"  # the cluster version the leader recorded (etcd: "cluster" bucket)
META_V2_STORE = b"v2store"  # the v2 store's state (etcdx; etcd keeps it in its snapshot files)

"""A fresh v2 store as etcd 3.4's single member starts with it: its namespaces ("/0" for the cluster, "/1" for
user keys) and the three internal writes of its start (member registration, member attributes, cluster
version) at indexes 1-3, so the first user write gets index 4 as in etcd."""

from __future__ import annotations

from etcdx.v2store.gojson import encode
from etcdx.v2store.store import V2Store

CLUSTER_NAMESPACE = "/0"
KEYS_NAMESPACE = "/1"
CLUSTER_VERSION = "3.4.0"


def register_member(settings, now: int) -> V2Store:
    """``settings`` needs member_id, name, peer_urls and client_urls; ``now`` is Unix ns."""
    store = V2Store((CLUSTER_NAMESPACE, KEYS_NAMESPACE))
    member = f"{CLUSTER_NAMESPACE}/members/{settings.member_id:x}"
    raft_attributes = encode({"peerURLs": list(settings.peer_urls)}).decode()
    store.create(f"{member}/raftAttributes", False, raft_attributes, False, None, now)
    attributes = encode({"name": settings.name, "clientURLs": list(settings.client_urls)}).decode()
    store.set(f"{member}/attributes", False, attributes, None, False, now)
    store.set(f"{CLUSTER_NAMESPACE}/version", False, CLUSTER_VERSION, None, False, now)
    return store

"""The v2 store as etcd 3.4's single member starts with it. Fresh: its namespaces ("/0" for the cluster, "/1"
for user keys) and the three internal writes of its first start (member registration, member attributes,
cluster version) at indexes 1-3, so the first user write gets index 4 as in etcd. Restarted: the saved state;
the member then publishes its attributes again through the log (``attributes_request``), as etcd's restart
does (one index): through the log, so that a replay after a crash gives every later write the same index."""

from __future__ import annotations

from etcdx.pb.etcdxpb.internal_pb2 import V2Request
from etcdx.v2store import snapshot
from etcdx.v2store.gojson import encode
from etcdx.v2store.store import V2Store

CLUSTER_NAMESPACE = "/0"
KEYS_NAMESPACE = "/1"
CLUSTER_VERSION = "3.4.0"


def register_member(settings, now: int, saved: bytes | None = None) -> V2Store:
    """``settings`` needs member_id, name, peer_urls and client_urls; ``now`` is Unix ns; ``saved``: the
    state snapshot.dump wrote at the last commit, if any."""
    if saved is not None:
        store = snapshot.load(saved)
        store.restored = True
        return store
    store = V2Store((CLUSTER_NAMESPACE, KEYS_NAMESPACE))
    raft_attributes = encode({"peerURLs": list(settings.peer_urls)}).decode()
    store.create(f"{_member(settings)}/raftAttributes", False, raft_attributes, False, None, now)
    request = attributes_request(settings)
    store.set(request.path, False, request.value, None, False, now)
    store.set(f"{CLUSTER_NAMESPACE}/version", False, CLUSTER_VERSION, None, False, now)
    store.changed = True
    return store


def _member(settings) -> str:
    return f"{CLUSTER_NAMESPACE}/members/{settings.member_id:x}"


def attributes_request(settings) -> V2Request:
    """The write that publishes the member's name and client URLs."""
    attributes = encode({"name": settings.name, "clientURLs": list(settings.client_urls)}).decode()
    return V2Request(method="PUT", path=f"{_member(settings)}/attributes", value=attributes)


def state_if_changed(store: V2Store) -> bytes | None:
    """The store's state to save with the next backend commit, or None when no request changed it since."""
    if not store.changed:
        return None
    store.changed = False
    return snapshot.dump(store)

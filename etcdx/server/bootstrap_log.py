"""The log a new cluster starts with, as etcd's: one ConfChange AddNode entry per initial member, by member id,
at term 1 and indexes 1..n, committed (HardState term 1, commit n). Every member of a new cluster
(--initial-cluster-state new, empty data dir) writes the same entries, so their logs agree from index 1 and
the raft index a user sees equals etcd's. The leader later records the cluster version through the log once
(``cluster_version_request``), as etcd's leader does on a cluster that has none.

The entries carry no context: the members are stored in the backend already (``Change.decode`` gives None),
the same as the entries `etcdx snapshot restore` writes."""

from __future__ import annotations

from etcdx.pb.etcdxpb.internal_pb2 import ClusterVersionSet, InternalRequest
from etcdx.pb.etcdxpb.raft_pb2 import HardState
from etcdx.raft import ConfChange, ConfChangeType, Entry, EntryType
from etcdx.version import CLUSTER_VERSION


def bootstrap_entries(member_ids: list[int]) -> tuple[list[Entry], HardState]:
    """The entries and the HardState a new member's empty WAL starts with (see the module docstring)."""
    entries = [
        Entry(1, index, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_NODE, member_id).encode())
        for index, member_id in enumerate(sorted(member_ids), start=1)
    ]
    return entries, HardState(term=1, commit=len(entries))


def cluster_version_request() -> InternalRequest:
    """The entry that records this release's cluster version (etcd's ClusterVersionSet "3.5.0")."""
    return InternalRequest(cluster_version_set=ClusterVersionSet(ver=CLUSTER_VERSION))

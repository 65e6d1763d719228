"""This member's identity in its data dir: its member id and its cluster's id, written once when the data dir
is first used and read on every restart (etcd keeps them in its WAL's metadata). A file of its own, not a row
of the backend: a backend image received from another member (a snapshot) must not bring that member's id.

File ``member/identity``: two lowercase hex ids separated by a space. Written to a temporary file, fsynced,
renamed into place, then the directory fsynced: it is either absent or whole after a crash."""

from __future__ import annotations

import os

from etcdx.server.data_dir import fsync_dir


def read(member_dir: str) -> tuple[int, int] | None:
    """(member id, cluster id), or None for a data dir that has none (new, restored, or from before)."""
    try:
        with open(os.path.join(member_dir, "identity")) as f:
            member, cluster = f.read().split()
    except FileNotFoundError:
        return None
    return int(member, 16), int(cluster, 16)


def write(member_dir: str, member: int, cluster: int) -> None:
    path = os.path.join(member_dir, "identity")
    partial = path + ".tmp"
    with open(partial, "w") as f:
        f.write(f"{member:x} {cluster:x}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
    fsync_dir(member_dir)

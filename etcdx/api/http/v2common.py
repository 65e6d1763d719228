"""What every v2 HTTP answer shares: etcd's CORS headers, content types and the cluster ID header."""

from __future__ import annotations

from etcdx.server.server import EtcdServer

CORS = [
    ("access-control-allow-headers", "accept, content-type, authorization"),
    ("access-control-allow-methods", "POST, GET, OPTIONS, PUT, DELETE"),
    ("access-control-allow-origin", "*"),
]
JSON = ("content-type", "application/json")
TEXT = ("content-type", "text/plain; charset=utf-8")


def cluster_header(server: EtcdServer) -> tuple[str, str]:
    return ("x-etcd-cluster-id", f"{server.cluster_id:x}")

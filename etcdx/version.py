"""Versions etcdx reports: it speaks etcd 3.5's API, so clients see etcd's version numbers."""

ETCDX_VERSION = "0.1.0"
SERVER_VERSION = "3.5.1"
CLUSTER_VERSION = "3.5.0"
API_VERSION = "3.5"

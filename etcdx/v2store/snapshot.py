"""The v2 store's state as bytes, and back (etcd keeps it in its snapshot; etcdx in the backend, committed in
the same transaction as the consistent index, so state and log position always agree). Holds the tree, the
store index and the counters; the event history and watchers are not kept (etcd does not keep them either)."""

from __future__ import annotations

import json

from etcdx.v2store.stats import StoreStats
from etcdx.v2store.store import Node, V2Store

FORMAT = 1


def _dump(node: Node) -> list:
    children = None if node.children is None else [_dump(child) for child in node.children.values()]
    return [node.name, node.created_index, node.modified_index, node.expire_time, node.value, children]


def dump(store: V2Store) -> bytes:
    state = {
        "format": FORMAT,
        "index": store.current_index,
        "read_only": sorted(store.read_only),
        "stats": vars(store.stats),
        "root": [_dump(child) for child in store.root.children.values()],
    }
    return json.dumps(state, separators=(",", ":")).encode()


def load(data: bytes) -> V2Store:
    state = json.loads(data)
    if state.get("format") != FORMAT:
        raise ValueError(f"unknown v2 store format {state.get('format')!r}")
    store = V2Store()
    store.read_only = frozenset(state["read_only"])
    store.current_index = state["index"]
    store.stats = StoreStats(**state["stats"])
    pending = [(store.root, child) for child in state["root"]]
    while pending:
        parent, (name, created, modified, expire, value, children) = pending.pop()
        path = ("" if parent.path == "/" else parent.path) + "/" + name
        node = Node(path, created, parent, expire, value, children is not None)
        node.modified_index = modified
        parent.children[name] = node
        if expire is not None:
            store._ttl_push(node)
        pending.extend((node, child) for child in children or ())
    return store

"""How etcd's Lock and Election services report the errors of the requests they make.

etcd serves them by running clientv3's recipes against its own KV and Lease APIs. clientv3 turns every
etcd error it receives into a Go error that is no gRPC status, so the service answers it with code
UNKNOWN and the same text (e.g. UNKNOWN "etcdserver: requested lease not found", where LeaseRevoke
answers NOT_FOUND). ``as_recipe_errors`` makes etcdx's recipes (etcdx.server.concurrency) answer the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from etcdx.errors import EtcdError, StatusCode


@contextmanager
def as_recipe_errors() -> Iterator[None]:
    """Re-raises an EtcdError from the block with code UNKNOWN and the same message."""
    try:
        yield
    except EtcdError as exc:
        if exc.code == StatusCode.UNKNOWN:
            raise
        raise EtcdError(StatusCode.UNKNOWN, exc.message) from None

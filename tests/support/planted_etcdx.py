"""etcdx with a planted bug, to show that a checker catches what it exists to catch:

    python -m tests.support.planted_etcdx BUG [etcdx flags...]

- ``local-reads``: every Range is served from the member's local state at once, as a serializable one is:
  a follower (or a deposed leader) answers "linearizable" reads without ReadIndex.
"""

from __future__ import annotations

import sys

from etcdx.api.grpc import kv_checks
from etcdx.api.grpc.codec import decode
from etcdx.api.grpc.kv import KVService
from etcdx.cli.main import main
from etcdx.pb.etcdserverpb import rpc_pb2


def _local_range(self, data, ctx, reply) -> None:
    request = decode(rpc_pb2.RangeRequest, data)
    kv_checks.check_range(request)
    reply(self._server.range_encoded(request))


BUGS = {"local-reads": lambda: setattr(KVService, "range", _local_range)}

if __name__ == "__main__":
    BUGS[sys.argv[1]]()
    sys.exit(main(sys.argv[2:]))

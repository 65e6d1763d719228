"""The server core's write path without the network: N trio tasks each loop ``EtcdServer.propose(put)``
on a real member (WAL fdatasync, LMDB apply, watch notify, waiter wake-up) in a temporary directory.

Run: cd /work/main && pytest bench/test_bench_write_path.py --benchmark-only
A round is PUTS puts at every N, so round times compare directly; ``extra_info`` carries puts/s (from the
mean round), process CPU per put (every thread, the kernel's share of fdatasync included) and fsyncs per put
(1.0 means no group commit). One member serves every round of a case; keys are drawn from KEY_SPACE.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
import trio

from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.server import EtcdServer
from etcdx.server.settings import ServerSettings
from tests.support.server_settings import server_settings

PROPOSERS = (1, 16, 64)
PUTS = 2048
KEY_SPACE = 100_000
VALUE = b"v" * 256


def settings(data_dir: str) -> ServerSettings:
    """etcd's defaults for one member (tests/support/server_settings.py), with a 4 GiB map for the long runs."""
    return server_settings(data_dir, "bench", backend_map_size=4 * 1024**3)


class Member:
    """One member served by its own trio run on a background thread; ``run_round`` runs a coroutine there."""

    def __init__(self, data_dir: str) -> None:
        self._started = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._serve, data_dir))
        self._thread.start()
        self._started.wait()

    async def _serve(self, data_dir: str) -> None:
        self.server = EtcdServer(settings(data_dir))
        async with trio.open_nursery() as nursery:
            await nursery.start(self.server.run)
            self._token = trio.lowlevel.current_trio_token()
            self._scope = nursery.cancel_scope
            self._started.set()

    def run_round(self, round_fn) -> None:
        trio.from_thread.run(round_fn, trio_token=self._token)

    def stop(self) -> None:
        trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join()


@pytest.mark.parametrize("proposers", PROPOSERS, ids=[f"{n}-proposers" for n in PROPOSERS])
def test_put_proposals(benchmark, tmp_path, proposers):
    rng = random.Random(proposers)
    per_proposer = PUTS // proposers
    cpu: list[float] = []
    fsyncs: list[int] = []
    member = Member(str(tmp_path))
    server = member.server

    async def proposer() -> None:
        for _ in range(per_proposer):
            key = b"key-%d" % rng.randrange(KEY_SPACE)
            await server.propose(InternalRequest(put=rpc_pb2.PutRequest(key=key, value=VALUE)))

    async def one_round() -> None:
        started, fsynced = time.process_time(), server.wal.fsync_count
        async with trio.open_nursery() as nursery:
            for _ in range(proposers):
                nursery.start_soon(proposer)
        cpu.append(time.process_time() - started)
        fsyncs.append(server.wal.fsync_count - fsynced)

    try:
        benchmark.pedantic(member.run_round, args=(one_round,), rounds=5, iterations=1, warmup_rounds=1)
    finally:
        member.stop()
    benchmark.group = f"server write path at {proposers} proposers ({PUTS} puts a round, no network)"
    puts = per_proposer * proposers
    benchmark.extra_info["puts_per_s"] = round(puts / benchmark.stats.stats.mean)
    benchmark.extra_info["cpu_us_per_put"] = round(min(cpu) / puts * 1e6, 1)
    benchmark.extra_info["fsyncs_per_put"] = round(min(fsyncs) / puts, 3)

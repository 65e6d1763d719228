"""Flags that reach the Raft core and the lessor of a running EtcdServer: --pre-vote, and the lease checkpoint
interval with --experimental-enable-lease-checkpoint."""

from __future__ import annotations

import pytest
import trio

from etcdx.server.server import EtcdServer
from tests.support.server_settings import server_settings


@pytest.mark.parametrize("pre_vote", [True, False])
def test_pre_vote_reaches_the_raft_core(tmp_path, pre_vote):
    async def run():
        server = EtcdServer(server_settings(str(tmp_path / "data"), backend_map_size=64 << 20, pre_vote=pre_vote))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            assert server.node.raft.cfg.pre_vote is pre_vote
            nursery.cancel_scope.cancel()

    trio.run(run)


@pytest.mark.parametrize(("enabled", "interval"), [(True, 7.0), (False, None)])
def test_lease_checkpoints_are_scheduled_only_with_the_flag(tmp_path, enabled, interval):
    settings = server_settings(str(tmp_path / "data"), lease_checkpoint=enabled, lease_checkpoint_interval=7.0)
    assert EtcdServer(settings).lessor.checkpoint_interval == interval

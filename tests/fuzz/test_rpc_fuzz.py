"""RPC fuzz against a live member (tests/fuzz/rpc_campaign.py): 0 crashes, 0 hangs, 0 handler or apply
failures, and the same state after a kill -9 and a restart.

CI runs ETCDX_FUZZ_REQUESTS generated requests (default below) in each mode of the suite (compiled
extensions, then their twins: the server process inherits ETCDX_NO_EXTENSIONS). The full campaign
(20,000 and more per mode, both modes) is scripts/rpc_fuzz.py.
"""

from __future__ import annotations

import os

from tests.fuzz.rpc_campaign import Campaign
from tests.support.procs import etcdx_process

REQUESTS = int(os.environ.get("ETCDX_FUZZ_REQUESTS", "20000"))
SEED = int(os.environ.get("ETCDX_FUZZ_SEED", "8"))


def test_generated_requests_never_stop_the_member(tmp_path):
    with etcdx_process(tmp_path).start() as server:
        campaign = Campaign(server)
        report = campaign.run(REQUESTS, SEED)
        assert report.crashes == 0, server.log_tail()
        assert report.hangs == []
        assert report.log_findings == []
        assert report.requests >= REQUESTS
        campaign.check_restart()
        print(report.summary())
        assert report.state_mismatches == []
        assert report.puts_checked > 0

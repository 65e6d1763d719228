"""v2 keys API against etcd 3.4.23 --enable-v2 as the oracle: seeded random sequences of v2 operations give the
same status, bodies and headers on both (tests/support/v2_campaign.py names what is normalised and why).
CI runs ETCDX_V2_SEQUENCES sequences; scripts/v2_differential.py runs the full campaign (300 and more)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.procs import ETCD_34, etcd34_process, etcdx_process
from tests.support.v2_campaign import run

SEQUENCES = int(os.environ.get("ETCDX_V2_SEQUENCES", "30"))

pytestmark = pytest.mark.skipif(
    shutil.which(ETCD_34) is None and not os.environ.get("CI"), reason="etcd 3.4.23 (Debian etcd-server) missing"
)


def test_v2_sequences_match_etcd_34(tmp_path):
    etcd = etcd34_process(tmp_path, extra_args=("--enable-v2",))
    etcdx = etcdx_process(tmp_path, extra_args=("--enable-v2",))
    with etcd.start(), etcdx.start():
        campaign = run(etcd.client_port, etcdx.client_port, range(1000, 1000 + SEQUENCES), 12)
    assert campaign.checked > SEQUENCES * 10
    assert campaign.failures == [], "\n".join(campaign.failures[:20])

"""Power cuts on a LazyFS mount (tests/support/lazyfs.py): after every cut the member starts and holds every
acknowledged write, and nothing no client sent. The checks are described in tests/support/powercut.py; the
long campaign is scripts/powercut_campaign.py (this runs a few cuts per variant: ETCDX_POWERCUT_CUTS).

The planted-fault tests show the cuts can fail: the same loop with one fsync taken out of the member (through
the test-only wrapper tests/support/powercut_member.py) must report a lost write or a store that does not open.
The backend fault needs the random-subset variant: when every unsynced page is dropped, an LMDB file that is
never fsynced on commit is simply older (the WAL replays the rest); it breaks when some of its pages survive.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.powercut import run_campaign

CUTS = int(os.environ.get("ETCDX_POWERCUT_CUTS", "8"))
PLANTED_MAX_CUTS = 25

# Skipped on a developer's machine without FUSE; never in CI (CI=true), where a missing FUSE must fail loudly.
pytestmark = pytest.mark.skipif(
    not (os.path.exists("/dev/fuse") and shutil.which("fusermount3") and os.geteuid() == 0)
    and not os.environ.get("CI"),
    reason="needs /dev/fuse, fusermount3 and root",
)


@pytest.mark.parametrize(("keep_fraction", "seed"), [(0.0, 11), (0.5, 12)], ids=["drop-unsynced", "keep-random-half"])
def test_power_cuts_lose_no_acknowledged_write(tmp_path, keep_fraction, seed):
    result = run_campaign(str(tmp_path), CUTS, keep_fraction=keep_fraction, seed=seed)
    assert result.failures == [], result.summary()
    assert result.cuts == CUTS
    assert result.acknowledged_writes > 100 * CUTS, result.summary()
    assert result.history_checks > 0
    assert result.wal_segments > CUTS, "the load should cross WAL segment boundaries"


@pytest.mark.parametrize(
    ("plant", "keep_fraction"), [("wal-fdatasync", 0.0), ("backend-sync", 0.5)], ids=["wal-fdatasync", "backend-sync"]
)
def test_power_cuts_catch_a_planted_missing_fsync(tmp_path, plant, keep_fraction):
    result = run_campaign(
        str(tmp_path), PLANTED_MAX_CUTS, keep_fraction=keep_fraction, seed=21, plant=plant, stop_at_first_failure=True
    )
    assert result.failures, f"no cut caught the planted fault: {result.summary()}"

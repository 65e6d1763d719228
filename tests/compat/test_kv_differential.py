"""Differential test: the same seeded KV operation sequences against real etcd 3.5.1 and etcdx.

ETCDX_DIFF_SEQUENCES (default 1000) sets how many sequences run; ETCDX_DIFF_FIRST_SEED (default 0)
the first seed. The servers live for the whole run and see every sequence in order, so a failure
at seed N replays exactly with ETCDX_DIFF_FIRST_SEED=0 ETCDX_DIFF_SEQUENCES=N+1 (and usually with
ETCDX_DIFF_FIRST_SEED=N ETCDX_DIFF_SEQUENCES=1 alone).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.compat.opgen import generate
from tests.compat.runner import KVClient
from tests.support.procs import etcd_process, etcdx_process

SEQUENCES = int(os.environ.get("ETCDX_DIFF_SEQUENCES", "1000"))
FIRST_SEED = int(os.environ.get("ETCDX_DIFF_FIRST_SEED", "0"))


@pytest.fixture(scope="module")
def server_pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diff")
    with etcd_process(tmp).start() as etcd, etcdx_process(tmp).start() as etcdx:
        yield etcd, etcdx


def test_kv_responses_identical_to_etcd(server_pair):
    etcd, etcdx = server_pair
    oracle, candidate = KVClient(etcd.endpoint), KVClient(etcdx.endpoint)
    ops_run = 0
    outcomes: dict[str, int] = {}
    try:
        with ThreadPoolExecutor(2) as pool:
            for seed in range(FIRST_SEED, FIRST_SEED + SEQUENCES):
                base = oracle.revision()
                assert candidate.revision() == base, f"seed {seed}: revisions diverged before the sequence"
                for index, op in enumerate(generate(seed, base)):
                    expected, actual = pool.map(lambda client, op=op: client.run(op), (oracle, candidate))
                    assert actual == expected, (
                        f"seed {seed} op {index}: {op}\n etcd:  {expected}\n etcdx: {actual}\n"
                        f"replay: ETCDX_DIFF_FIRST_SEED={FIRST_SEED} ETCDX_DIFF_SEQUENCES={seed - FIRST_SEED + 1}"
                    )
                    ops_run += 1
                    kind = "error" if "error" in expected else op.method
                    outcomes[kind] = outcomes.get(kind, 0) + 1
    finally:
        oracle.close()
        candidate.close()
    print(f"\n{SEQUENCES} sequences, {ops_run} ops identical; outcomes: {dict(sorted(outcomes.items()))}")
    assert ops_run > SEQUENCES * 25

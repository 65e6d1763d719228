"""The /v3 JSON gateway against etcd 3.5.1 as the oracle (tests/support/gateway_campaign.py has the cases and
names what is normalised, and why): the same curl-style requests give the same status, headers and bodies, for
every /v3 path, errors and streams included, and for the access controller's flags. CI runs the scripted cases
and ETCDX_GATEWAY_SEEDS sets of random bodies; scripts/gateway_differential.py runs more."""

from __future__ import annotations

import os

from etcdx.api.http.gateway_routes import ROUTES
from tests.support.gateway_campaign import (
    ACCESS_CASES,
    ACCESS_FLAGS,
    CASES,
    NO_GATEWAY_CASES,
    UNSENT_PATHS,
    random_bodies,
    run,
)
from tests.support.procs import etcd_process, etcdx_process

SEEDS = int(os.environ.get("ETCDX_GATEWAY_SEEDS", "5"))


def _run_both(tmp_path, cases, extra_args=()):
    etcd = etcd_process(tmp_path, extra_args=extra_args)
    etcdx = etcdx_process(tmp_path, extra_args=extra_args)
    with etcd.start(), etcdx.start():
        return run(etcd.client_port, etcdx.client_port, cases)


def test_every_v3_path_answers_as_etcd(tmp_path):
    cases = [case for seed in range(SEEDS) for case in random_bodies(seed)] + CASES
    campaign = _run_both(tmp_path, cases)
    assert campaign.failures == [], "\n".join(campaign.failures[:20])
    assert campaign.checked == len(cases)
    assert ROUTES.keys() - campaign.paths == UNSENT_PATHS
    # Only cases that name why etcd or etcdx's services (through gRPC too) answer otherwise may differ.
    assert len(campaign.known) <= sum(1 for case in cases if case.differs)


def test_cors_and_host_whitelist_answer_as_etcd(tmp_path):
    campaign = _run_both(tmp_path, ACCESS_CASES, ACCESS_FLAGS)
    assert campaign.failures == [], "\n".join(campaign.failures[:20])
    assert campaign.checked == len(ACCESS_CASES)


def test_without_the_gateway_v3_paths_are_unknown_as_in_etcd(tmp_path):
    campaign = _run_both(tmp_path, NO_GATEWAY_CASES, ("--enable-grpc-gateway=false",))
    assert campaign.failures == [], "\n".join(campaign.failures[:20])

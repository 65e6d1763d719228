"""The /v3 JSON gateway against etcd 3.5.1 as the oracle (tests/support/gateway_campaign.py has the cases and
names what is normalised, and why): the same curl-style requests give the same status, headers and bodies, for
every /v3 path, errors and streams included, and for the access controller's flags. CI runs the scripted cases
and ETCDX_GATEWAY_SEEDS sets of random bodies; scripts/gateway_differential.py runs more."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import sys
import time

from etcdx.api.http.gateway_routes import ROUTES
from tests.support.gateway_campaign import (
    ACCESS_CASES,
    ACCESS_FLAGS,
    CASES,
    NO_GATEWAY_CASES,
    random_bodies,
    run,
)
from tests.support.procs import ETCD, READY_TIMEOUT, ServerProcess, etcd_process, etcdx_process, free_ports

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
    assert ROUTES.keys() - campaign.paths == set()
    # Only cases that name why etcd or etcdx's services (through gRPC too) answer otherwise may differ.
    assert len(campaign.known) <= sum(1 for case in cases if case.differs)


def test_cors_and_host_whitelist_answer_as_etcd(tmp_path):
    campaign = _run_both(tmp_path, ACCESS_CASES, ACCESS_FLAGS)
    assert campaign.failures == [], "\n".join(campaign.failures[:20])
    assert campaign.checked == len(ACCESS_CASES)


def test_without_the_gateway_v3_paths_are_unknown_as_in_etcd(tmp_path):
    campaign = _run_both(tmp_path, NO_GATEWAY_CASES, ("--enable-grpc-gateway=false",))
    assert campaign.failures == [], "\n".join(campaign.failures[:20])


def _https_member(tmp_path, binary: list[str], name: str) -> ServerProcess:
    """A member whose client URL is https (--auto-tls), with a host whitelist that names no host the test sends."""
    client_port, peer_port = free_ports(2)
    client, peer = f"https://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    data_dir = str(tmp_path / name)
    argv = [*binary, "--name", name, "--data-dir", data_dir, "--auto-tls", "--host-whitelist", "ok.example"]
    argv += ["--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer]
    argv += ["--initial-advertise-peer-urls", peer, "--initial-cluster", f"{name}={peer}"]
    return ServerProcess(argv, data_dir, client_port, peer_port, str(tmp_path / f"{name}.log"))


def _https_post(port: int, path: str, body: bytes, host: str) -> tuple[int, bytes]:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # --auto-tls: a self-signed certificate
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
        try:
            connection.request("POST", path, body=body, headers={"Host": host})
            response = connection.getresponse()
            return response.status, response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        finally:
            connection.close()


def test_over_tls_the_host_whitelist_does_not_apply_as_in_etcd(tmp_path):
    """etcd checks the Host only on plain connections: over https a host it does not list is served."""
    answers = []
    for binary, name in (([ETCD], "etcd"), ([sys.executable, "-m", "etcdx"], "etcdx")):
        server = _https_member(tmp_path, binary, name)
        server.launch()
        try:
            put = _https_post(server.client_port, "/v3/kv/put", b'{"key":"Zm9v","value":"YmFy"}', "evil.example")
            status, body = _https_post(server.client_port, "/v3/kv/range", b'{"key":"Zm9v"}', "evil.example:1")
        finally:
            server.stop()
        answers.append((put[0], status, json.loads(body)["kvs"][0]["value"]))
    assert answers == [(200, 200, "YmFy"), (200, 200, "YmFy")]

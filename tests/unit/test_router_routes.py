"""The member serves every method of etcd's API: each one the auth policy names has a route."""

from __future__ import annotations

from etcdx.api.grpc.router import build_routes
from etcdx.auth import policy
from etcdx.cli.main import settings_from_config
from etcdx.config import parse_config
from etcdx.server.server import EtcdServer


def test_every_method_of_the_policy_is_routed(tmp_path):
    server = EtcdServer(settings_from_config(parse_config(["--data-dir", str(tmp_path / "data")], {})))
    routes = build_routes(server)
    assert len(policy.METHODS) > 40
    assert policy.METHODS.keys() - routes.keys() == set()

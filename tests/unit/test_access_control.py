"""etcd's access controller (etcdx/api/http/access_control.py): which Host names pass on plain connections, which
origins get CORS headers. The answers themselves are compared with etcd in test_gateway_differential.py."""

from __future__ import annotations

import pytest

from etcdx.api.http.access_control import AccessControl, hostname
from etcdx.net.http1 import HttpRequest


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("example.com:2379", "example.com"),
        ("example.com", "example.com"),
        ("[::1]:2379", "::1"),
        ("[::1]", "[::1]"),
        ("::1", "::1"),
        ("", ""),
    ],
)
def test_hostname_is_gos_split_host_port(header, name):
    assert hostname(header) == name


def _request(*headers):
    return HttpRequest("POST", "/v3/kv/range", list(headers), b"")


def test_host_whitelist_applies_to_plain_connections_only():
    access = AccessControl(host_whitelist=frozenset(["ok.example"]))
    refused = access.refusal(_request(("Host", "evil.example:2379")), secure=False)
    assert refused is not None and refused.status == 421
    assert b'etcd --host-whitelist "evil.example"' in refused.body
    assert access.refusal(_request(("Host", "evil.example:2379")), secure=True) is None
    assert access.refusal(_request(("Host", "ok.example:1")), secure=False) is None
    assert AccessControl(host_whitelist=frozenset()).refusal(_request(("Host", "x")), secure=False) is None


def test_cors_origin():
    assert AccessControl().cors_origin(None) == "*"
    listed = AccessControl(cors=frozenset(["http://ok.example:8080"]))
    assert listed.cors_origin("http://ok.example:8080") == "http://ok.example:8080"
    assert listed.cors_origin("http://bad.example") is None
    assert listed.cors_headers(_request(("Origin", "http://bad.example"))) == []
    assert AccessControl(cors=frozenset()).cors_origin(None) == "*"


def test_cors_and_host_whitelist_flags_are_taken_as_etcd_takes_them():
    from etcdx.config import ConfigError, parse_config

    config = parse_config(["--cors", "http://a.example:80,*", "--host-whitelist", "a,b"], {})
    assert config.cors == frozenset(["http://a.example:80", "*"]) and config.host_whitelist == frozenset(["a", "b"])
    assert parse_config([], {"ETCD_HOST_WHITELIST": "c"}).host_whitelist == frozenset(["c"])
    with pytest.raises(ConfigError) as refused:
        parse_config(["--cors", "http://ok.example"], {})
    # etcd 3.5.1's text for the same flag.
    assert str(refused.value) == (
        'invalid value "http://ok.example" for flag -cors: URL address does not have the form "host:port": '
        "http://ok.example"
    )

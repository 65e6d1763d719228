"""etcd's flags, ETCD_* variables and YAML file -> Config, with etcd's texts for what goes wrong."""

from __future__ import annotations

import re

import pytest

from etcdx.config import ConfigError, parse_config

PEER = ["--initial-advertise-peer-urls", "http://127.0.0.1:23800", "--listen-peer-urls", "http://127.0.0.1:23800"]


def test_defaults_are_etcds():
    config = parse_config([], {})
    assert config.name == "default"
    assert config.data_dir == "default.etcdx"
    assert [(u.scheme, u.host, u.port) for u in config.listen_client_urls] == [("http", "localhost", 2379)]
    assert [(u.scheme, u.host, u.port) for u in config.listen_peer_urls] == [("http", "localhost", 2380)]
    assert config.max_request_bytes == 1572864
    assert config.max_txn_ops == 128
    assert config.effective_quota_backend_bytes == 2 * 1024**3
    assert config.initial_cluster == {"default": ("http://localhost:2380",)}


def test_member_and_cluster_ids_are_computed_as_etcd_does():
    config = parse_config(PEER, {})
    assert config.member_id == 0x2E1259D415F2A040
    assert config.cluster_id == 0x48276A8F75B6A87


@pytest.mark.parametrize(
    "argv",
    [
        ["--name", "n1", "--max-txn-ops=7"],
        ["-name", "n1", "-max-txn-ops", "7"],
        ["--name=n1", "--max-txn-ops", "7"],
    ],
)
def test_go_flag_syntax(argv):
    config = parse_config(argv, {})
    assert (config.name, config.max_txn_ops, config.data_dir) == ("n1", 7, "n1.etcdx")


def test_environment_fills_what_the_command_line_does_not():
    config = parse_config(["--max-txn-ops", "5"], {"ETCD_NAME": "envname", "ETCD_MAX_REQUEST_BYTES": "1000"})
    assert (config.name, config.max_request_bytes, config.max_txn_ops) == ("envname", 1000, 5)


def test_flag_and_environment_together_is_fatal():
    with pytest.raises(ConfigError, match="conflicting environment variable.*ETCD_NAME"):
        parse_config(["--name", "a"], {"ETCD_NAME": "b"})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["foo"], "'foo' is not a valid flag"),
        (["--bogus"], "flag provided but not defined: -bogus"),
        (["--max-txn-ops", "x"], 'invalid value "x" for flag -max-txn-ops'),
        (
            ["--listen-client-urls", "http://127.0.0.1:1"],
            "--advertise-client-urls is required when --listen-client-urls is set explicitly",
        ),
        (["--election-timeout", "100"], r"--election-timeout\[100ms\] should be at least as 5 times as"),
        (["--election-timeout", "60000"], "is too long, and should be set less than 50000ms"),
        (
            ["--listen-client-urls", "https://127.0.0.1:1", "--advertise-client-urls", "https://127.0.0.1:1"],
            r"TLS key/cert \(--cert-file, --key-file\) must be provided for client url https://127.0.0.1:1",
        ),
        (["--listen-peer-urls", "unixs://p:1"], r"TLS key/cert \(--peer-cert-file, --peer-key-file\) must be"),
        (["--cipher-suites", "TLS_BOGUS"], 'unexpected TLS cipher suite "TLS_BOGUS"'),
        (["--tls-min-version", "TLS1.1"], 'unexpected TLS version "TLS1.1"'),
        (["--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"], "is greater than max version"),
        (
            ["--tls-min-version", "TLS1.3", "--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
            "cipher suites cannot be configured when only TLS1.3 is enabled",
        ),
        (["--auto-tls", "--self-signed-cert-validity", "0"], "selfSignedCertValidity is invalid"),
        (["--experimental-enable-lease-checkpoint-persist"], "requires experimental-enable-lease-checkpoint"),
        (["--experimental-enable-v2v3=x"], "etcdx: --experimental-enable-v2v3 serves the v2 API from the v3 store"),
        (["--initial-cluster", "other=http://localhost:2380"], 'couldn\'t find local name "default"'),
    ],
)
def test_refused_configurations(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(argv, {})


def test_not_implemented_flag_at_its_default_is_accepted():
    assert parse_config(["--auto-tls=false", "--enable-v2=false", "--cors", "*"], {}).name == "default"


def test_enable_v2_from_flag_and_environment():
    assert parse_config(["--enable-v2"], {}).enable_v2
    assert parse_config([], {"ETCD_ENABLE_V2": "true"}).enable_v2
    assert not parse_config([], {}).enable_v2


def test_config_file_replaces_flags_and_environment(tmp_path):
    path = tmp_path / "etcd.yaml"
    path.write_text(
        "name: fromfile\n"
        "data-dir: /tmp/fromfile\n"
        "listen-client-urls: http://127.0.0.1:4001\n"
        "advertise-client-urls: http://127.0.0.1:4001\n"
        "max-txn-ops: 9\n"
        "client-transport-security:\n  cert-file: ''\n"
    )
    config = parse_config(["--config-file", str(path), "--name", "ignored"], {"ETCD_MAX_TXN_OPS": "3"})
    assert (config.name, config.data_dir, config.max_txn_ops) == ("fromfile", "/tmp/fromfile", 9)
    assert [(u.host, u.port) for u in config.listen_client_urls] == [("127.0.0.1", 4001)]


def test_config_file_tls_blocks_set_the_tls_flags(tmp_path):
    path = tmp_path / "etcd.yaml"
    path.write_text(
        "client-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  client-cert-auth: true\n"
        "  trusted-ca-file: /ca.pem\n  client-cert-file: /gw.pem\n"
        "peer-transport-security:\n  auto-tls: true\n"
        "peer-cert-allowed-cn: member\n"
    )
    config = parse_config(["--config-file", str(path)], {})
    client, peer = config.client_tls, config.peer_tls
    assert (client.cert_file, client.key_file, client.trusted_ca_file) == ("/c.pem", "/k.pem", "/ca.pem")
    assert client.client_cert_auth and not client.auto_tls
    assert peer.auto_tls and peer.allowed_cn == "member" and not peer.cert_file


def test_config_file_tls_block_with_an_unknown_key_is_refused(tmp_path):
    path = tmp_path / "etcd.yaml"
    path.write_text("client-transport-security:\n  cert: /x.pem\n")
    with pytest.raises(ConfigError, match="unknown field"):
        parse_config(["--config-file", str(path)], {})


def test_tls_flags_and_secure_urls():
    argv = ["--listen-client-urls", "https://127.0.0.1:1,unixs://sock:2", "--advertise-client-urls", "https://a:1"]
    argv += [
        "--cert-file",
        "/c",
        "--key-file",
        "/k",
        "--client-crl-file",
        "/crl",
        "--cipher-suites",
        "TLS_AES_128_GCM_SHA256",
    ]
    config = parse_config(argv, {"ETCD_CLIENT_CERT_ALLOWED_HOSTNAME": "host.example"})
    assert [u.scheme for u in config.listen_client_urls] == ["https", "unixs"]
    assert (config.client_tls.crl_file, config.client_tls.allowed_hostname) == ("/crl", "host.example")
    assert config.cipher_suites == ("TLS_AES_128_GCM_SHA256",)


def test_wal_retention_flags():
    config = parse_config([], {})
    assert (config.snapshot_count, config.max_wals, config.max_snapshots, config.snapshot_catchup_entries) == (
        100000,
        5,
        5,
        5000,
    )
    argv = ["--snapshot-count", "10", "--max-wals", "0", "--experimental-snapshot-catchup-entries", "7"]
    config = parse_config(argv, {"ETCD_MAX_SNAPSHOTS": "2"})
    assert (config.snapshot_count, config.max_wals, config.max_snapshots, config.snapshot_catchup_entries) == (
        10,
        0,
        2,
        7,
    )
    for flag in ("--max-wals", "--snapshot-count", "--max-snapshots"):
        with pytest.raises(ConfigError, match=f'invalid value "-1" for flag -{flag[2:]}: parse error'):
            parse_config([flag, "-1"], {})


def test_grpc_stream_and_keepalive_flags():
    config = parse_config([], {})
    assert config.max_concurrent_streams == 2**32 - 1
    assert (config.grpc_keepalive_min_time, config.grpc_keepalive_interval, config.grpc_keepalive_timeout) == (
        5.0,
        7200.0,
        20.0,
    )
    argv = ["--max-concurrent-streams", "100", "--grpc-keepalive-min-time", "1s", "--grpc-keepalive-interval=0"]
    config = parse_config(argv, {"ETCD_GRPC_KEEPALIVE_TIMEOUT": "500ms"})
    assert config.max_concurrent_streams == 100
    assert (config.grpc_keepalive_min_time, config.grpc_keepalive_interval, config.grpc_keepalive_timeout) == (
        1.0,
        0.0,
        0.5,
    )
    with pytest.raises(ConfigError, match="-max-concurrent-streams"):
        parse_config(["--max-concurrent-streams", "-1"], {})
    with pytest.raises(ConfigError, match="-grpc-keepalive-timeout"):
        parse_config(["--grpc-keepalive-timeout", "soon"], {})


def test_backend_batch_flags_default_to_etcds_batch_and_take_a_duration_and_a_count():
    config = parse_config([], {})
    assert (config.backend_batch_interval, config.backend_batch_limit) == (0.1, 10000)
    config = parse_config(["--backend-batch-interval=0", "--backend-batch-limit", "0"], {})
    assert (config.backend_batch_interval, config.backend_batch_limit) == (0.1, 10000)  # 0: etcd's default
    config = parse_config(["--backend-batch-interval", "25ms"], {"ETCD_BACKEND_BATCH_LIMIT": "500"})
    assert (config.backend_batch_interval, config.backend_batch_limit) == (0.025, 500)
    with pytest.raises(ConfigError, match="backend-batch-interval"):
        parse_config(["--backend-batch-interval", "-1s"], {})
    with pytest.raises(ConfigError, match="backend-batch-interval"):
        parse_config(["--backend-batch-interval", "often"], {})


def test_auth_flags_are_taken_and_checked_as_etcd_does():
    config = parse_config(["--auth-token", "jwt,sign-method=RS256,pub-key=p", "--auth-token-ttl", "60"], {})
    assert (config.auth_token, config.auth_token_ttl, config.bcrypt_cost) == ("jwt,sign-method=RS256,pub-key=p", 60, 10)
    assert parse_config(["--bcrypt-cost", "4"], {}).bcrypt_cost == 4
    # as etcd: a cost bcrypt does not take falls back to the default (with a warning)
    assert [parse_config(["--bcrypt-cost", c], {}).bcrypt_cost for c in ("3", "32")] == [10, 10]
    for argv, message in (
        (["--auth-token", "kerberos"], "auth: invalid auth options"),
        (["--auth-token", "jwt,pub-key=p"], "auth: invalid auth signature method"),
        (["--auth-token", "jwt,sign-method=RS256,colour=red"], "unknown token option: colour"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(argv, {})

"""etcd's flags, ETCD_* environment variables and YAML config file -> one frozen Config.

Rules (as etcd 3.5): Go flag syntax (`--flag=v`, `--flag v`, `-flag v`, bare booleans); every flag
may come from ETCD_<FLAG_NAME> when it is not on the command line (both set is fatal); with
--config-file (or ETCD_CONFIG_FILE) only the YAML file counts. Every flag etcd has is recognised; one
that etcdx does not implement yet fails loudly when set to anything but its default.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from etcdx.auth import passwords
from etcdx.auth.options import AuthOptionsError, parse_auth_token
from etcdx.log import get_logger
from etcdx.log_config import LogFlagError, LogRotation, check_logger, rotation_settings
from etcdx.net.tls_versions import TlsFlagError, openssl_ciphers, version_range
from etcdx.server.ids import cluster_id, member_id

log = get_logger("etcdx.config")

DEFAULT_BCRYPT_COST = 10


class ConfigError(Exception):
    """A configuration the server refuses to start with; the message is printed as it is."""


_LOG_ROTATION_DEFAULT = '{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}'

# name -> (kind, default). Kinds: str, int, bool, urls (comma-separated list).
IMPLEMENTED: dict[str, tuple[str, object]] = {
    "auth-token": ("str", "simple"),
    "bcrypt-cost": ("int", DEFAULT_BCRYPT_COST),
    "auth-token-ttl": ("int", 300),
    "name": ("str", "default"),
    "data-dir": ("str", ""),
    "wal-dir": ("str", ""),
    "snapshot-count": ("uint", 100000),
    "max-snapshots": ("uint", 5),
    "max-wals": ("uint", 5),
    # etcd 3.5.7+ (not in 3.5.1): entries the log keeps below the last release for followers to catch up.
    "experimental-snapshot-catchup-entries": ("uint", 5000),
    "heartbeat-interval": ("int", 100),
    "election-timeout": ("int", 1000),
    "listen-peer-urls": ("urls", "http://localhost:2380"),
    "listen-client-urls": ("urls", "http://localhost:2379"),
    "initial-advertise-peer-urls": ("urls", "http://localhost:2380"),
    "initial-cluster": ("str", ""),
    "initial-cluster-state": ("str", "new"),
    "force-new-cluster": ("bool", False),
    "initial-cluster-token": ("str", "etcd-cluster"),
    "strict-reconfig-check": ("bool", True),
    "advertise-client-urls": ("urls", "http://localhost:2379"),
    "quota-backend-bytes": ("int", 0),
    # 0 means etcd's defaults (100ms, 10000 entries).
    "backend-batch-interval": ("str", ""),
    "backend-batch-limit": ("int", 0),
    "max-txn-ops": ("int", 128),
    "max-request-bytes": ("int", 1572864),
    "max-concurrent-streams": ("int", 2**32 - 1),
    "grpc-keepalive-min-time": ("str", "5s"),
    "grpc-keepalive-interval": ("str", "2h"),
    "grpc-keepalive-timeout": ("str", "20s"),
    "logger": ("str", "zap"),
    "log-outputs": ("str", "default"),
    "log-level": ("str", "info"),
    "enable-log-rotation": ("bool", False),
    "log-rotation-config-json": ("str", _LOG_ROTATION_DEFAULT),
    "metrics": ("str", "basic"),
    "listen-metrics-urls": ("str", ""),
    "enable-grpc-gateway": ("bool", True),
    "cors": ("str", "*"),
    "host-whitelist": ("str", "*"),
    "enable-v2": ("bool", False),
    "experimental-watch-progress-notify-interval": ("str", "10m"),
    # TLS (net/tls.py). The two version flags are not in etcd 3.5.1 (later etcd has them).
    "cert-file": ("str", ""),
    "key-file": ("str", ""),
    "client-cert-auth": ("bool", False),
    "client-crl-file": ("str", ""),
    "client-cert-allowed-hostname": ("str", ""),
    "trusted-ca-file": ("str", ""),
    "auto-tls": ("bool", False),
    "peer-cert-file": ("str", ""),
    "peer-key-file": ("str", ""),
    "peer-client-cert-auth": ("bool", False),
    "peer-trusted-ca-file": ("str", ""),
    "peer-cert-allowed-cn": ("str", ""),
    "peer-cert-allowed-hostname": ("str", ""),
    "peer-auto-tls": ("bool", False),
    "self-signed-cert-validity": ("int", 1),
    "peer-crl-file": ("str", ""),
    "cipher-suites": ("str", ""),
    "experimental-peer-skip-client-san-verification": ("bool", False),
    "tls-min-version": ("str", ""),
    "tls-max-version": ("str", ""),
    "config-file": ("str", ""),
    "version": ("bool", False),
    "help": ("bool", False),
    "experimental-initial-corrupt-check": ("bool", False),
    "experimental-corrupt-check-time": ("str", "0s"),
    # Raft, storage and compaction tuning (etcdx/server/auto_compaction.py, the server's apply and boot).
    "initial-election-tick-advance": ("bool", True),
    "pre-vote": ("bool", True),
    "auto-compaction-retention": ("str", "0"),
    "auto-compaction-mode": ("str", "periodic"),
    "experimental-compaction-batch-limit": ("int", 1000),
    "experimental-warning-apply-duration": ("str", "100ms"),
    "experimental-memory-mlock": ("bool", False),
    "experimental-bootstrap-defrag-threshold-megabytes": ("uint", 0),
    "unsafe-no-fsync": ("bool", False),
    "socket-reuse-port": ("bool", False),
    "socket-reuse-address": ("bool", False),
    # etcdx's own (not an etcd flag): worker processes serving reads on the client port (etcdx/worker/);
    # "auto": one per core beyond the member's own (cli/main.py).
    "experimental-read-workers": ("workers", "auto"),
    "v2-deprecation": ("str", "not-yet"),
    "experimental-enable-lease-checkpoint": ("bool", False),
    "experimental-enable-lease-checkpoint-persist": ("bool", False),
    # bbolt and Go tuning with nothing to tune in LMDB: validated as etcd does, no effect (docs/differences.md).
    "backend-bbolt-freelist-type": ("str", "map"),
    "experimental-txn-mode-write-with-shared-buffer": ("bool", True),
    # Sub-flags that only matter with their main flag (which stays refused below): accepted and validated.
    "discovery-fallback": ("str", "proxy"),
    "discovery-proxy": ("str", ""),
    "discovery-srv-name": ("str", ""),
    "experimental-distributed-tracing-address": ("str", "localhost:4317"),
    "experimental-distributed-tracing-service-name": ("str", "etcd"),
    "experimental-distributed-tracing-instance-id": ("str", ""),
    "proxy-failure-wait": ("uint", 5000),
    "proxy-refresh-interval": ("uint", 30000),
    "proxy-dial-timeout": ("uint", 1000),
    "proxy-write-timeout": ("uint", 5000),
    "proxy-read-timeout": ("uint", 0),
}

# Flags etcd 3.5 has that etcdx does not honour: accepted only at their default value.
NOT_IMPLEMENTED: dict[str, tuple[str, object]] = {
    "discovery": ("str", ""),
    "discovery-srv": ("str", ""),
    "enable-pprof": ("bool", False),
    "experimental-enable-distributed-tracing": ("bool", False),
    "proxy": ("str", "off"),
    "experimental-enable-v2v3": ("str", ""),
}

# Flags refused with the reason (rather than "not implemented yet"): what they need lies outside this process.
_DISCOVERY = (
    "needs a discovery service outside this cluster (etcd's public discovery service or DNS SRV records), which "
    "etcdx does not contact: bootstrap with --initial-cluster and --initial-cluster-state instead"
)
NEEDS_OUTSIDE_SERVICE = {
    "discovery": _DISCOVERY,
    "discovery-srv": _DISCOVERY,
    "enable-pprof": "serves Go's runtime profiler (net/http/pprof), which a Python process does not have",
    "experimental-enable-distributed-tracing": (
        "exports OpenTelemetry spans to a collector outside this process, which etcdx does not run"
    ),
    "proxy": "is etcd's v2 proxy mode (forwarding /v2 to the --initial-cluster members), which etcdx does not run",
    "experimental-enable-v2v3": (
        "serves the v2 API from the v3 store; etcdx serves v2 from its own v2 store with --enable-v2 instead"
    ),
}

# Accepted and ignored with a warning, as etcd does.
OBSOLETE = frozenset(
    [
        "cluster-active-size",
        "cluster-remove-delay",
        "cluster-sync-interval",
        "config",
        "force",
        "max-result-buffer",
        "max-retry-attempts",
        "peer-heartbeat-interval",
        "peer-election-timeout",
        "retry-interval",
        "snapshot",
        "v",
        "vv",
    ]
)

FLAGS = {**IMPLEMENTED, **NOT_IMPLEMENTED}
DEFAULT_QUOTA_BYTES = 2 * 1024**3
DEFAULT_BACKEND_BATCH_INTERVAL = 0.1  # etcd's defaultBatchInterval
DEFAULT_BACKEND_BATCH_LIMIT = 10000  # etcd's defaultBatchLimit
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


@dataclass(frozen=True)
class Url:
    scheme: str
    host: str
    port: int
    text: str


@dataclass(frozen=True)
class TlsFlags:
    """One port's TLS flags (client: --cert-file...; peer: --peer-cert-file...), as given."""

    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    auto_tls: bool = False
    crl_file: str = ""
    allowed_cn: str = ""
    allowed_hostname: str = ""
    skip_client_san_verification: bool = False  # peer port only

    @property
    def has_cert(self) -> bool:
        return bool(self.cert_file and self.key_file)


@dataclass(frozen=True)
class Config:
    name: str
    data_dir: str
    wal_dir: str
    snapshot_count: int
    heartbeat_interval: int
    election_timeout: int
    listen_peer_urls: tuple[Url, ...]
    listen_client_urls: tuple[Url, ...]
    initial_advertise_peer_urls: tuple[Url, ...]
    initial_cluster: dict[str, tuple[str, ...]]
    initial_cluster_state: str
    force_new_cluster: bool
    initial_cluster_token: str
    strict_reconfig_check: bool
    advertise_client_urls: tuple[Url, ...]
    quota_backend_bytes: int
    max_txn_ops: int
    max_request_bytes: int
    logger: str
    log_outputs: tuple[str, ...]
    log_level: str
    enable_grpc_gateway: bool
    show_version: bool
    show_help: bool
    watch_progress_notify_interval: float = 600.0
    enable_v2: bool = False
    cors: frozenset[str] = frozenset(["*"])
    host_whitelist: frozenset[str] = frozenset(["*"])
    max_wals: int = 5
    max_snapshots: int = 5
    snapshot_catchup_entries: int = 5000
    max_concurrent_streams: int = 2**32 - 1
    grpc_keepalive_min_time: float = 5.0
    grpc_keepalive_interval: float = 7200.0
    grpc_keepalive_timeout: float = 20.0
    backend_batch_interval: float = DEFAULT_BACKEND_BATCH_INTERVAL
    backend_batch_limit: int = DEFAULT_BACKEND_BATCH_LIMIT
    client_tls: TlsFlags = TlsFlags()
    peer_tls: TlsFlags = TlsFlags()
    cipher_suites: tuple[str, ...] = ()  # Go names, checked
    tls_min_version: str = ""
    tls_max_version: str = ""
    self_signed_cert_validity: int = 1
    auth_token: str = "simple"  # as given; checked by etcdx.auth.options.parse_auth_token
    auth_token_ttl: int = 300  # seconds a simple token lives after its last use
    bcrypt_cost: int = 10
    initial_corrupt_check: bool = False
    corrupt_check_time: float = 0.0  # seconds; 0: no periodic check
    auto_compaction_mode: str = "periodic"  # "periodic" or "revision"
    # periodic: seconds of history kept; revision: revisions kept; 0: no auto compaction.
    auto_compaction_retention: float = 0.0
    compaction_batch_limit: int = 1000  # keys a compaction deletes per backend transaction (<= 0: all at once)
    warning_apply_duration: float = 0.1  # seconds an apply may take before it is logged as slow
    initial_election_tick_advance: bool = True
    pre_vote: bool = True
    socket_reuse_port: bool = False
    socket_reuse_address: bool = False
    read_workers: int | None = None  # --experimental-read-workers (etcdx/worker/): None = auto, 0 = one process
    unsafe_no_fsync: bool = False
    memory_mlock: bool = False
    bootstrap_defrag_threshold_megabytes: int = 0
    lease_checkpoint: bool = False
    lease_checkpoint_persist: bool = False
    v2_deprecation: str = "not-yet"
    log_rotation: LogRotation | None = None  # with --enable-log-rotation
    metrics: str = "basic"  # "extensive" adds grpc_server_handling_seconds; any other value means basic, as in etcd
    listen_metrics_urls: tuple[Url, ...] = ()  # extra listeners serving only /metrics and /health

    @property
    def effective_quota_backend_bytes(self) -> int:
        """0 means etcd's default of 2 GiB; a negative quota disables the check (returned as 0)."""
        if self.quota_backend_bytes == 0:
            return DEFAULT_QUOTA_BYTES
        return max(self.quota_backend_bytes, 0)

    @property
    def initial_advertise_peer_urls_str(self) -> tuple[str, ...]:
        return tuple(u.text for u in self.initial_advertise_peer_urls)

    @property
    def advertise_client_urls_str(self) -> tuple[str, ...]:
        return tuple(u.text for u in self.advertise_client_urls)

    @property
    def member_id(self) -> int:
        return member_id(self.initial_cluster[self.name], self.initial_cluster_token)

    @property
    def cluster_id(self) -> int:
        ids = [member_id(urls, self.initial_cluster_token) for urls in self.initial_cluster.values()]
        return cluster_id(ids)

    @property
    def initial_members(self) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
        """The initial cluster as (member id, name, peer URLs), ordered by member id."""
        members = [
            (member_id(urls, self.initial_cluster_token), name, urls) for name, urls in self.initial_cluster.items()
        ]
        return tuple(sorted(members))


def usage() -> str:
    lines = ["Usage:", "", "  etcdx [flags]", "", "Flags (etcd's; those marked * are not implemented):"]
    for name, (_, default) in sorted(FLAGS.items()):
        star = " *" if name in NOT_IMPLEMENTED else ""
        lines.append(f"  --{name} '{_show(default)}'{star}")
    return "\n".join(lines) + "\n"


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(name: str, raw: str) -> float:
    """Seconds from a Go duration such as "10m", "1h30m" or "100ms"."""
    text = raw.strip()
    if text in ("0", ""):
        return 0.0
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ConfigError(f'invalid value "{raw}" for flag -{name}: parse error')
    return total


def _parse_argv(argv: list[str]) -> dict[str, str]:
    """Go's flag package syntax. Values stay strings; a bare boolean flag means "true"."""
    given: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            raise ConfigError(f"'{arg}' is not a valid flag")
        body = arg.lstrip("-")
        name, eq, value = body.partition("=")
        if name in ("h",):
            name = "help"
        if name not in FLAGS and name not in OBSOLETE:
            raise ConfigError(f"flag provided but not defined: -{name}")
        kind = FLAGS[name][0] if name in FLAGS else "str"
        if not eq:
            if kind == "bool":
                value = "true"
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                raise ConfigError(f"flag needs an argument: -{name}")
        given[name] = value
    return given


def _from_env(environ: Mapping[str, str], on_command_line: dict[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    known = {"ETCD_" + n.upper().replace("-", "_"): n for n in [*FLAGS, *OBSOLETE]}
    for var, value in environ.items():
        if not var.startswith("ETCD_"):
            continue
        name = known.get(var)
        if name is None:
            log.warning("unrecognized environment variable", environment_variable=f"{var}={value}")
            continue
        if name in on_command_line:
            raise ConfigError(
                "conflicting environment variable is shadowed by corresponding command-line flag "
                f"(either unset environment variable or disable flag)): {var}"
            )
        values[name] = value
    return values


def _from_yaml(path: str) -> dict[str, str]:
    try:
        with open(path) as f:
            document = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError(f"cannot load config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"error parsing config file {path}: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"error parsing config file {path}: not a mapping")
    values: dict[str, str] = {}
    for key, value in document.items():
        if key in _SECURITY_BLOCKS:
            values.update(_security_block(path, key, value))
            continue
        if key not in FLAGS:
            raise ConfigError(f"error unmarshaling config file {path}: unknown field {key!r}")
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        values[key] = _show(value)
    return values


# The YAML file's TLS blocks: key -> flag, per block (client-cert-file and client-key-file are the
# certificate etcd's own gateway presents; etcdx's gateway needs none, so they are accepted and unused).
_SECURITY_BLOCKS = {
    "client-transport-security": {
        "cert-file": "cert-file",
        "key-file": "key-file",
        "trusted-ca-file": "trusted-ca-file",
        "client-cert-auth": "client-cert-auth",
        "auto-tls": "auto-tls",
    },
    "peer-transport-security": {
        "cert-file": "peer-cert-file",
        "key-file": "peer-key-file",
        "trusted-ca-file": "peer-trusted-ca-file",
        "client-cert-auth": "peer-client-cert-auth",
        "auto-tls": "peer-auto-tls",
    },
}


def _security_block(path: str, key: str, block: object) -> dict[str, str]:
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ConfigError(f"error unmarshaling config file {path}: {key} is not a mapping")
    values = {}
    for field, value in block.items():
        if field in ("client-cert-file", "client-key-file"):
            continue
        if field not in _SECURITY_BLOCKS[key]:
            raise ConfigError(f"error unmarshaling config file {path}: unknown field {key}.{field!r}")
        if value is not None:
            values[_SECURITY_BLOCKS[key][field]] = _show(value)
    return values


def _convert(name: str, raw: str) -> object:
    kind = FLAGS[name][0]
    if kind == "bool":
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ConfigError(f'invalid boolean value "{raw}" for -{name}: parse error')
    if kind == "workers" and raw == "auto":
        return raw
    if kind in ("int", "uint", "workers"):
        try:
            value = int(raw, 0)
        except ValueError:
            raise ConfigError(f'invalid value "{raw}" for flag -{name}: parse error') from None
        if kind in ("uint", "workers") and value < 0:
            raise ConfigError(f'invalid value "{raw}" for flag -{name}: parse error')
        return value
    return raw


def _urls(name: str, raw: str) -> tuple[Url, ...]:
    urls = []
    for text in raw.split(","):
        text = text.strip()
        parsed = urllib.parse.urlsplit(text)
        if parsed.scheme not in ("http", "https", "unix", "unixs") or not parsed.netloc:
            raise ConfigError(
                f'invalid value "{raw}" for flag -{name}: URL scheme must be http, https, unix, or unixs: {text}'
            )
        if parsed.path not in ("", "/"):
            raise ConfigError(f'invalid value "{raw}" for flag -{name}: URL must not contain a path: {text}')
        try:
            port = parsed.port
        except ValueError:
            port = None
        if port is None or parsed.hostname is None:
            raise ConfigError(
                f'invalid value "{raw}" for flag -{name}: URL address does not have the form "host:port": {text}'
            )
        urls.append(Url(parsed.scheme, parsed.hostname, port, text))
    return tuple(urls)


def _initial_cluster(raw: str) -> dict[str, tuple[str, ...]]:
    cluster: dict[str, list[str]] = {}
    for item in raw.split(","):
        name, eq, url = item.partition("=")
        if not eq or not name or not url:
            raise ConfigError(f"--initial-cluster has an invalid entry {item!r} (want name=peer-url)")
        _urls("initial-cluster", url)
        cluster.setdefault(name, []).append(url)
    return {name: tuple(urls) for name, urls in cluster.items()}


def _workers_count(value: int | str) -> int | None:
    """--experimental-read-workers as Config holds it: None for "auto"."""
    return None if value == "auto" else int(value)


def parse_config(argv: list[str], environ: Mapping[str, str]) -> Config:
    given = _parse_argv(argv)
    env_values = _from_env(environ, given)
    config_file = given.get("config-file") or env_values.get("config-file", "")
    values = _from_yaml(config_file) if config_file else {**env_values, **given}
    if config_file:
        values.setdefault("config-file", config_file)
    for name in OBSOLETE & values.keys():
        log.warning("flag is obsolete and ignored", flag=f"--{name}")
        del values[name]
    typed = {name: _convert(name, raw) for name, raw in values.items()}
    for name, value in typed.items():
        if name in NOT_IMPLEMENTED and value != NOT_IMPLEMENTED[name][1]:
            if name in NEEDS_OUTSIDE_SERVICE:
                raise ConfigError(f"etcdx: --{name} {NEEDS_OUTSIDE_SERVICE[name]}")
            raise ConfigError(f"etcdx: --{name} is not implemented yet")

    def get(name: str) -> object:
        return typed.get(name, IMPLEMENTED[name][1])

    if "listen-client-urls" in typed and "advertise-client-urls" not in typed:
        raise ConfigError("--advertise-client-urls is required when --listen-client-urls is set explicitly")
    heartbeat, election = get("heartbeat-interval"), get("election-timeout")
    if heartbeat <= 0 or election <= 0:
        raise ConfigError("--heartbeat-interval and --election-timeout must be > 0")
    if 5 * heartbeat > election:
        raise ConfigError(
            f"--election-timeout[{election}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat}ms]"
        )
    if election > 50000:
        raise ConfigError(f"--election-timeout[{election}ms] is too long, and should be set less than 50000ms")
    max_streams = get("max-concurrent-streams")
    if not 0 <= max_streams <= 2**32 - 1:
        raise ConfigError(f'invalid value "{max_streams}" for flag -max-concurrent-streams: parse error')
    if get("log-level") not in ("debug", "info", "warn", "error", "dpanic", "panic", "fatal"):
        raise ConfigError(f'unknown level "{get("log-level")}"')
    log_outputs = tuple(get("log-outputs").split(","))
    try:
        check_logger(get("logger"))
        rotate = get("enable-log-rotation")
        log_rotation = rotation_settings(log_outputs, get("log-rotation-config-json")) if rotate else None
    except LogFlagError as exc:
        raise ConfigError(str(exc)) from None
    metrics_urls = get("listen-metrics-urls")
    state = get("initial-cluster-state")
    if state not in ("new", "existing"):
        raise ConfigError(
            f'invalid value "{state}" for flag -initial-cluster-state: valid values are "new", "existing"'
        )

    batch_interval = parse_duration("backend-batch-interval", get("backend-batch-interval"))
    if batch_interval < 0:  # etcd panics on a negative ticker interval
        raise ConfigError(f"--backend-batch-interval must not be negative, got {get('backend-batch-interval')}")

    client_tls = TlsFlags(
        cert_file=get("cert-file"),
        key_file=get("key-file"),
        trusted_ca_file=get("trusted-ca-file"),
        client_cert_auth=get("client-cert-auth"),
        auto_tls=get("auto-tls"),
        crl_file=get("client-crl-file"),
        allowed_hostname=get("client-cert-allowed-hostname"),
    )
    peer_tls = TlsFlags(
        cert_file=get("peer-cert-file"),
        key_file=get("peer-key-file"),
        trusted_ca_file=get("peer-trusted-ca-file"),
        client_cert_auth=get("peer-client-cert-auth"),
        auto_tls=get("peer-auto-tls"),
        crl_file=get("peer-crl-file"),
        allowed_cn=get("peer-cert-allowed-cn"),
        allowed_hostname=get("peer-cert-allowed-hostname"),
        skip_client_san_verification=get("experimental-peer-skip-client-san-verification"),
    )
    cipher_suites = tuple(c.strip() for c in get("cipher-suites").split(",") if c.strip())
    try:
        openssl_ciphers(cipher_suites)
        version_range(get("tls-min-version"), get("tls-max-version"), cipher_suites)
    except TlsFlagError as exc:
        raise ConfigError(str(exc)) from None
    if (client_tls.auto_tls or peer_tls.auto_tls) and get("self-signed-cert-validity") <= 0:
        raise ConfigError("selfSignedCertValidity is invalid,it should be greater than 0")
    listen_client_urls = _urls("listen-client-urls", get("listen-client-urls"))
    listen_peer_urls = _urls("listen-peer-urls", get("listen-peer-urls"))
    _check_secure_urls(listen_client_urls, client_tls, "--cert-file, --key-file", "client")
    _check_secure_urls(listen_peer_urls, peer_tls, "--peer-cert-file, --peer-key-file", "peer")

    name = get("name")
    peer_urls = _urls("initial-advertise-peer-urls", get("initial-advertise-peer-urls"))
    initial_cluster = _initial_cluster(get("initial-cluster") or f"{name}=" + ",".join(u.text for u in peer_urls))
    if name not in initial_cluster:
        raise ConfigError(f'couldn\'t find local name "{name}" in the initial cluster configuration')
    if sorted(initial_cluster[name]) != sorted(u.text for u in peer_urls):
        raise ConfigError(
            f"--initial-cluster has {name}={','.join(initial_cluster[name])} but missing from "
            f"--initial-advertise-peer-urls={','.join(u.text for u in peer_urls)}"
        )

    compaction_mode, compaction_retention = _auto_compaction(
        get("auto-compaction-mode"), get("auto-compaction-retention")
    )
    v2_deprecation = _v2_deprecation(get("v2-deprecation"), get("enable-v2"))
    _check_choice("discovery-fallback", get("discovery-fallback"), ("exit", "proxy"))
    if get("experimental-enable-lease-checkpoint-persist") and not get("experimental-enable-lease-checkpoint"):
        raise ConfigError(
            "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint"
        )

    return Config(
        name=name,
        # etcd's default is "<name>.etcd"; etcdx keeps its own data beside it as "<name>.etcdx".
        data_dir=get("data-dir") or f"{name}.etcdx",
        wal_dir=get("wal-dir"),
        # etcd: a zero --snapshot-count means its default.
        snapshot_count=get("snapshot-count") or IMPLEMENTED["snapshot-count"][1],
        max_wals=get("max-wals"),
        max_snapshots=get("max-snapshots"),
        snapshot_catchup_entries=get("experimental-snapshot-catchup-entries"),
        heartbeat_interval=heartbeat,
        election_timeout=election,
        listen_peer_urls=listen_peer_urls,
        listen_client_urls=listen_client_urls,
        initial_advertise_peer_urls=peer_urls,
        initial_cluster=initial_cluster,
        initial_cluster_state=state,
        force_new_cluster=get("force-new-cluster"),
        strict_reconfig_check=get("strict-reconfig-check"),
        initial_cluster_token=get("initial-cluster-token"),
        advertise_client_urls=_urls("advertise-client-urls", get("advertise-client-urls")),
        quota_backend_bytes=get("quota-backend-bytes"),
        max_txn_ops=get("max-txn-ops"),
        max_request_bytes=get("max-request-bytes"),
        logger=get("logger"),
        log_outputs=log_outputs,
        log_level=get("log-level"),
        log_rotation=log_rotation,
        metrics=get("metrics"),
        listen_metrics_urls=_urls("listen-metrics-urls", metrics_urls) if metrics_urls else (),
        enable_grpc_gateway=get("enable-grpc-gateway"),
        enable_v2=get("enable-v2"),
        cors=_cors(get("cors")),
        host_whitelist=_unique_strings(get("host-whitelist")),
        show_version=get("version"),
        show_help=get("help"),
        backend_batch_interval=batch_interval or DEFAULT_BACKEND_BATCH_INTERVAL,
        backend_batch_limit=get("backend-batch-limit") or DEFAULT_BACKEND_BATCH_LIMIT,
        watch_progress_notify_interval=parse_duration(
            "experimental-watch-progress-notify-interval", get("experimental-watch-progress-notify-interval")
        ),
        max_concurrent_streams=max_streams,
        grpc_keepalive_min_time=parse_duration("grpc-keepalive-min-time", get("grpc-keepalive-min-time")),
        grpc_keepalive_interval=parse_duration("grpc-keepalive-interval", get("grpc-keepalive-interval")),
        grpc_keepalive_timeout=parse_duration("grpc-keepalive-timeout", get("grpc-keepalive-timeout")),
        client_tls=client_tls,
        peer_tls=peer_tls,
        cipher_suites=cipher_suites,
        tls_min_version=get("tls-min-version"),
        tls_max_version=get("tls-max-version"),
        self_signed_cert_validity=get("self-signed-cert-validity"),
        auth_token=_auth_token(get("auth-token")),
        auth_token_ttl=get("auth-token-ttl"),
        bcrypt_cost=_bcrypt_cost(get("bcrypt-cost")),
        initial_corrupt_check=get("experimental-initial-corrupt-check"),
        corrupt_check_time=parse_duration("experimental-corrupt-check-time", get("experimental-corrupt-check-time")),
        auto_compaction_mode=compaction_mode,
        auto_compaction_retention=compaction_retention,
        compaction_batch_limit=get("experimental-compaction-batch-limit"),
        warning_apply_duration=parse_duration(
            "experimental-warning-apply-duration", get("experimental-warning-apply-duration")
        ),
        initial_election_tick_advance=get("initial-election-tick-advance"),
        pre_vote=get("pre-vote"),
        socket_reuse_port=get("socket-reuse-port"),
        socket_reuse_address=get("socket-reuse-address"),
        read_workers=_workers_count(get("experimental-read-workers")),
        unsafe_no_fsync=get("unsafe-no-fsync"),
        memory_mlock=get("experimental-memory-mlock"),
        bootstrap_defrag_threshold_megabytes=get("experimental-bootstrap-defrag-threshold-megabytes"),
        lease_checkpoint=get("experimental-enable-lease-checkpoint"),
        lease_checkpoint_persist=get("experimental-enable-lease-checkpoint-persist"),
        v2_deprecation=v2_deprecation,
    )


_V2_DEPRECATION_STAGES = ("not-yet", "write-only", "write-only-drop-data", "gone")


def _auto_compaction(mode: str, retention: str) -> tuple[str, float]:
    """etcd's reading of --auto-compaction-retention: a bare non-negative integer is hours (periodic) or
    revisions (revision); anything else is a Go duration, in seconds (a revision count for revision mode is
    then the duration in nanoseconds, as etcd's is)."""
    if mode not in ("periodic", "revision"):
        raise ConfigError(f'unknown auto-compaction-mode "{mode}"')
    if re.fullmatch(r"\+?\d+", retention.strip()):
        count = int(retention)
        return mode, float(count * 3600 if mode == "periodic" else count)
    try:
        seconds = parse_duration("auto-compaction-retention", retention)
    except ConfigError:
        raise ConfigError(f'error parsing CompactionRetention: time: invalid duration "{retention}"') from None
    return mode, seconds if mode == "periodic" else float(round(seconds * 1e9))


def _v2_deprecation(stage: str, enable_v2: bool) -> str:
    """etcd 3.5's v2 deprecation stages; from write-only on, the v2 API cannot be served."""
    _check_choice("v2-deprecation", stage, _V2_DEPRECATION_STAGES, f' "{stage}"')
    if enable_v2 and stage != "not-yet":
        raise ConfigError(f"--enable-v2 and --v2-deprecation={stage} are mutually exclusive")
    return stage


def _check_choice(name: str, value: str, choices: tuple[str, ...], detail: str = "") -> None:
    """etcd's SelectiveStringValue: one of ``choices``, or its parse error."""
    if value not in choices:
        raise ConfigError(f'invalid value "{value}" for flag -{name}: invalid value{detail}')


def _cors(value: str) -> frozenset[str]:
    """--cors as etcd takes it: "*" or URLs (each checked as a URL flag is), compared with a request's Origin."""
    items = _unique_strings(value)
    for item in items - {"*"}:
        try:
            _urls("cors", item)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(f'"{item}"', f'"{value}"', 1)) from None
    return items


def _unique_strings(value: str) -> frozenset[str]:
    """etcd's UniqueStringsValue: the comma-separated items (none for an empty value)."""
    return frozenset(item for item in value.split(",") if item) if value else frozenset()


def _auth_token(value: str) -> str:
    """--auth-token as etcd parses it; a bad value refuses the start with etcd's text."""
    try:
        parse_auth_token(value)
    except AuthOptionsError as exc:
        raise ConfigError(str(exc)) from exc
    return value


def _bcrypt_cost(value: int) -> int:
    """etcd's rule: a cost bcrypt does not take is replaced by the default, with a warning."""
    if not passwords.MIN_COST <= value <= passwords.MAX_COST:
        log.warning(
            "use default bcrypt cost instead of the invalid given cost",
            **{"min-cost": passwords.MIN_COST, "max-cost": passwords.MAX_COST},
            **{"default-cost": DEFAULT_BCRYPT_COST, "given-cost": value},
        )
        return DEFAULT_BCRYPT_COST
    return value


def is_secure(url: Url) -> bool:
    return url.scheme in ("https", "unixs")


def _check_secure_urls(urls: tuple[Url, ...], tls: TlsFlags, flags: str, kind: str) -> None:
    """etcd's rules: a TLS URL needs a certificate (given, or made by auto-TLS); a plain one ignores it."""
    for url in urls:
        if is_secure(url) and not (tls.has_cert or tls.auto_tls):
            raise ConfigError(f"TLS key/cert ({flags}) must be provided for {kind} url {url.text} with HTTPS scheme")
        if not is_secure(url) and tls.has_cert:
            log.warning(
                "scheme is HTTP while key and cert files are present; ignoring key and cert files",
                **{f"{kind}-url": url.text},
            )

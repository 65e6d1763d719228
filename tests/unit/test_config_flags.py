"""Issue 13's flags, from each of etcd's three sources (command line, ETCD_* variable, YAML config file), into the
Config, and etcd's refusals for their bad values."""

from __future__ import annotations

import pytest
import yaml

from etcdx.config import NOT_IMPLEMENTED, ConfigError, parse_config, usage

# (flag, value as given, Config attribute, expected value)
FLAGS = [
    ("auto-compaction-mode", "revision", "auto_compaction_mode", "revision"),
    ("auto-compaction-retention", "30m", "auto_compaction_retention", 1800.0),
    ("experimental-compaction-batch-limit", "7", "compaction_batch_limit", 7),
    ("experimental-warning-apply-duration", "250ms", "warning_apply_duration", 0.25),
    ("initial-election-tick-advance", "false", "initial_election_tick_advance", False),
    ("pre-vote", "false", "pre_vote", False),
    ("socket-reuse-port", "true", "socket_reuse_port", True),
    ("socket-reuse-address", "true", "socket_reuse_address", True),
    ("unsafe-no-fsync", "true", "unsafe_no_fsync", True),
    ("experimental-memory-mlock", "true", "memory_mlock", True),
    ("experimental-bootstrap-defrag-threshold-megabytes", "64", "bootstrap_defrag_threshold_megabytes", 64),
    ("v2-deprecation", "write-only", "v2_deprecation", "write-only"),
    ("experimental-enable-lease-checkpoint", "true", "lease_checkpoint", True),
]
# Accepted and validated, with no effect of their own (docs/differences.md): parsing must not refuse them.
ACCEPTED = [
    ("backend-bbolt-freelist-type", "array"),
    ("experimental-txn-mode-write-with-shared-buffer", "false"),
    ("discovery-fallback", "exit"),
    ("discovery-proxy", "http://127.0.0.1:8080"),
    ("discovery-srv-name", "prod"),
    ("experimental-distributed-tracing-address", "127.0.0.1:4317"),
    ("experimental-distributed-tracing-service-name", "svc"),
    ("experimental-distributed-tracing-instance-id", "i-1"),
    ("proxy-failure-wait", "100"),
    ("proxy-refresh-interval", "100"),
    ("proxy-dial-timeout", "100"),
    ("proxy-write-timeout", "100"),
    ("proxy-read-timeout", "100"),
]
SOURCES = ("argv", "env", "yaml")


def test_checkpoint_persist_from_each_source(tmp_path):
    flags = {"experimental-enable-lease-checkpoint": "true", "experimental-enable-lease-checkpoint-persist": "true"}
    for source in SOURCES:
        assert _parse(source, flags, tmp_path).lease_checkpoint_persist


def _parse(source: str, flags: dict[str, str], tmp_path):
    if source == "argv":
        return parse_config([f"--{name}={value}" for name, value in flags.items()], {})
    if source == "env":
        return parse_config([], {"ETCD_" + name.upper().replace("-", "_"): value for name, value in flags.items()})
    path = tmp_path / "etcd.yaml"
    path.write_text(yaml.safe_dump({name: yaml.safe_load(value) for name, value in flags.items()}))
    return parse_config(["--config-file", str(path)], {})


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("flag", "value", "attribute", "expected"), FLAGS, ids=[f[0] for f in FLAGS])
def test_each_flag_from_each_source(source, flag, value, attribute, expected, tmp_path):
    assert getattr(parse_config([], {}), attribute) != expected  # the default differs: the flag is what counts
    assert getattr(_parse(source, {flag: value}, tmp_path), attribute) == expected


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("flag", "value"), ACCEPTED, ids=[f[0] for f in ACCEPTED])
def test_accepted_flags_from_each_source(source, flag, value, tmp_path):
    _parse(source, {flag: value}, tmp_path)


@pytest.mark.parametrize(
    ("mode", "retention", "expected"),
    [
        ("periodic", "0", 0.0),
        ("periodic", "1", 3600.0),  # a bare number is hours
        ("periodic", "2s", 2.0),
        ("periodic", "1h30m", 5400.0),
        ("revision", "1000", 1000.0),  # a bare number is revisions
        ("revision", "1us", 1000.0),  # a duration is its nanoseconds, as etcd reads it
    ],
)
def test_auto_compaction_retention_as_etcd_reads_it(mode, retention, expected):
    config = parse_config(["--auto-compaction-mode", mode, "--auto-compaction-retention", retention], {})
    assert (config.auto_compaction_mode, config.auto_compaction_retention) == (mode, expected)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--auto-compaction-mode", "bogus"], 'unknown auto-compaction-mode "bogus"'),
        (["--auto-compaction-retention", "xyz"], 'error parsing CompactionRetention: time: invalid duration "xyz"'),
        (["--v2-deprecation", "bogus"], 'invalid value "bogus" for flag -v2-deprecation: invalid value "bogus"'),
        (["--v2-deprecation", "gone", "--enable-v2"], "--enable-v2 and --v2-deprecation=gone are mutually exclusive"),
        (["--v2-deprecation=write-only", "--enable-v2"], "--enable-v2 and --v2-deprecation=write-only are mutually"),
        (["--discovery-fallback", "bogus"], 'invalid value "bogus" for flag -discovery-fallback: invalid value'),
        (["--experimental-warning-apply-duration", "xx"], "-experimental-warning-apply-duration: parse error"),
        (["--experimental-bootstrap-defrag-threshold-megabytes", "-1"], "parse error"),
        (["--proxy-dial-timeout", "-1"], "parse error"),
        (["--pre-vote=maybe"], 'invalid boolean value "maybe" for -pre-vote'),
        (["--discovery-srv", "example.com"], "needs a discovery service outside this cluster"),
        (["--enable-pprof"], "--enable-pprof serves Go's runtime profiler"),
        (["--experimental-enable-distributed-tracing"], "exports OpenTelemetry spans"),
        (["--proxy", "on"], "--proxy is etcd's v2 proxy mode"),
    ],
)
def test_refusals(argv, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(argv, {})


def test_help_marks_only_what_is_not_implemented():
    marked = [line.split()[0] for line in usage().splitlines() if line.endswith(" *")]
    assert sorted(marked) == sorted(f"--{name}" for name in NOT_IMPLEMENTED)
    assert len(marked) <= 10  # of them, 4 logging and metrics flags another part implements

"""The `etcdx` command: etcd's flags -> Config -> the server core and the client API in one nursery."""

from __future__ import annotations

import gc
import os
import signal
import ssl
import sys
from functools import partial

import trio

from etcdx import log as logging_setup
from etcdx.api.http.metrics_port import serve_metrics_ports
from etcdx.api.serve import serve_clients
from etcdx.auth.options import AuthOptionsError
from etcdx.cli.listener_tls import TlsSetupError, client_addresses, metrics_addresses, peer_addresses
from etcdx.cli.memory_lock import MemoryLockError, lock_current_memory
from etcdx.cli.systemd_notify import notify_ready
from etcdx.config import Config, ConfigError, parse_config, usage
from etcdx.log import get_logger
from etcdx.log_config import LogFlagError
from etcdx.net.grpc_limits import GrpcLimits
from etcdx.net.grpc_metrics import COUNTS
from etcdx.net.listener import ListenAddress
from etcdx.net.peer_listener import hold_peer_port
from etcdx.peer.client_tls import peer_client_context
from etcdx.server.data_dir import DataDirLockedError
from etcdx.server.metrics_grpc import enable_handling_histogram
from etcdx.server.server import EtcdServer, MemberRemoved, MemberStopped
from etcdx.server.settings import ServerSettings
from etcdx.version import API_VERSION, ETCDX_VERSION, SERVER_VERSION
from etcdx.wal.wal import SEGMENT_BYTES
from etcdx.worker.link_client import link_path
from etcdx.worker.supervisor import WorkerPlan

log = get_logger("etcdx.cli")

MIN_PROGRESS_INTERVAL = 0.1
DEFAULT_MAP_SIZE = 64 * 1024**3
GIL_SWITCH_INTERVAL = 0.0005
MAX_UNIX_PATH = 107  # bytes of a unix socket path (sun_path less its NUL)


def settings_from_config(config: Config) -> ServerSettings:
    return ServerSettings(
        name=config.name,
        data_dir=config.data_dir,
        wal_dir=config.wal_dir,
        member_id=config.member_id,
        cluster_id=config.cluster_id,
        peer_urls=tuple(config.initial_advertise_peer_urls_str),
        initial_members=config.initial_members,
        client_urls=tuple(config.advertise_client_urls_str),
        max_request_bytes=config.max_request_bytes,
        max_txn_ops=config.max_txn_ops,
        quota_backend_bytes=config.effective_quota_backend_bytes,
        # etcd's watch store never notifies more often than every 100 ms, whatever the flag says.
        watch_progress_notify_interval=max(config.watch_progress_notify_interval, MIN_PROGRESS_INTERVAL),
        # LMDB's map is address space, not disk: keep it well above the quota so the quota, not the
        # map, is what refuses writes.
        backend_map_size=max(DEFAULT_MAP_SIZE, 2 * config.effective_quota_backend_bytes),
        heartbeat_interval_ms=config.heartbeat_interval,
        election_timeout_ms=config.election_timeout,
        snapshot_count=config.snapshot_count,
        max_wals=config.max_wals,
        snapshot_catchup_entries=config.snapshot_catchup_entries,
        backend_batch_interval=config.backend_batch_interval,
        backend_batch_limit=config.backend_batch_limit,
        enable_v2=config.enable_v2,
        enable_grpc_gateway=config.enable_grpc_gateway,
        cors=config.cors,
        host_whitelist=config.host_whitelist,
        initial_cluster_state=config.initial_cluster_state,
        force_new_cluster=config.force_new_cluster,
        strict_reconfig_check=config.strict_reconfig_check,
        auth_token=config.auth_token,
        auth_token_ttl=config.auth_token_ttl,
        bcrypt_cost=config.bcrypt_cost,
        initial_corrupt_check=config.initial_corrupt_check,
        corrupt_check_time=config.corrupt_check_time,
        auto_compaction_mode=config.auto_compaction_mode,
        auto_compaction_retention=config.auto_compaction_retention,
        compaction_batch_limit=config.compaction_batch_limit,
        warning_apply_duration=config.warning_apply_duration,
        initial_election_tick_advance=config.initial_election_tick_advance,
        pre_vote=config.pre_vote,
        unsafe_no_fsync=config.unsafe_no_fsync,
        lease_checkpoint=config.lease_checkpoint,
        lease_checkpoint_persist=config.lease_checkpoint_persist,
        # Test-only knob (etcd checkpoints every 5 minutes).
        lease_checkpoint_interval=float(os.environ.get("ETCDX_TEST_LEASE_CHECKPOINT_INTERVAL") or 300.0),
        bootstrap_defrag_threshold_bytes=config.bootstrap_defrag_threshold_megabytes * 1024**2,
        # Test-only knob (etcd's 5 minutes between revision-mode compactions is too long for a test run).
        revision_compaction_interval=float(os.environ.get("ETCDX_TEST_REVISION_COMPACTION_INTERVAL") or 300.0),
        # Test-only knob (small segments make release observable in a short run); not an etcd flag.
        wal_segment_bytes=int(os.environ.get("ETCDX_TEST_WAL_SEGMENT_BYTES") or SEGMENT_BYTES),
    )


def _peer_client_tls(config: Config, peers: list[ListenAddress]) -> ssl.SSLContext | None:
    """The TLS this member dials https:// peers with: the peer certificate and CA flags (as etcd's peer
    transport uses them), or None when no peer URL is https://."""
    if not any(url.startswith("https://") for _, _, urls in config.initial_members for url in urls):
        return None
    server_tls = next((peer.tls for peer in peers if peer.tls is not None), None)
    if server_tls is None:
        raise TlsSetupError("https:// peer URLs need --peer-cert-file and --peer-key-file (or --peer-auto-tls)")
    try:
        return peer_client_context(server_tls.settings, auto_tls=config.peer_tls.auto_tls)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"cannot set up peer client TLS: {exc}") from None


def version_text() -> str:
    return (
        f"etcd Version: {SERVER_VERSION}\n"
        f"Git SHA: etcdx\n"
        f"Go Version: python{sys.version_info.major}.{sys.version_info.minor}\n"
        f"Go OS/Arch: {sys.platform}/{os.uname().machine}\n"
        f"etcdx Version: {ETCDX_VERSION} (etcd API {API_VERSION})\n"
    )


async def run(
    config: Config,
    clients: list[ListenAddress],
    peers: list[ListenAddress],
    peer_client_tls: ssl.SSLContext | None,
    metrics_ports: tuple[ListenAddress, ...] | list[ListenAddress] = (),
    workers: WorkerPlan | None = None,
) -> None:
    """Runs one member until SIGINT or SIGTERM, then shuts down cleanly (WAL closed, backend closed); with
    ``workers``, its read workers too (etcdx/worker/)."""
    server = EtcdServer(settings_from_config(config), peer_client_tls=peer_client_tls)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
        # The peer port first: with peers, the member serves clients only once a leader is elected.
        for peer in peers:
            handler = server.handle_peer_connection
            await nursery.start(
                partial(
                    hold_peer_port,
                    peer.host,
                    peer.port,
                    tls=peer.tls,
                    unix=peer.unix,
                    reuse_port=peer.reuse_port,
                    handler=handler,
                )
            )
        await nursery.start(server.run)
        limits = GrpcLimits(
            max_concurrent_streams=config.max_concurrent_streams,
            keepalive_min_time=config.grpc_keepalive_min_time,
            keepalive_interval=config.grpc_keepalive_interval,
            keepalive_timeout=config.grpc_keepalive_timeout,
        )
        serve = partial(serve_clients, grpc_limits=limits, workers=workers)
        client_ports = await nursery.start(serve, server, clients)
        if metrics_ports:
            await nursery.start(serve_metrics_ports, server, metrics_ports)
        log.info(
            "ready to serve client requests",
            name=config.name,
            data_dir=config.data_dir,
            listen_client_urls=[
                f"{url.scheme}://{url.host}:{port}"
                for url, port in zip(config.listen_client_urls, client_ports, strict=True)
            ],
            listen_peer_urls=[url.text for url in config.listen_peer_urls],
        )
        # What exists now (the code, the state read at boot, the key index) lives as long as the member: the
        # cyclic collector stops walking it, so a full collection costs what changed since, not the keyspace.
        # Frozen objects are still freed by reference counting (the key index holds no cycles).
        gc.collect()
        gc.freeze()
        notify_ready()


async def _cancel_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received signal; shutting down", signal=signal.Signals(signum).name)
            scope.cancel()
            return


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        from etcdx.cli.bench.main import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] == ["snapshot"]:
        from etcdx.cli.snapshot_command import main as snapshot_main

        return snapshot_main(argv[1:])
    if argv[:1] == ["gateway"]:
        from etcdx.proxy.gateway import main as gateway_main

        return gateway_main(argv[1:])
    if argv[:1] == ["grpc-proxy"]:
        from etcdx.proxy.grpc_proxy import main as grpc_proxy_main

        return grpc_proxy_main(argv[1:])
    if argv[:1] == ["backup"]:
        from etcdx.cli.backup_command import main as backup_main

        return backup_main(argv[1:])
    if argv[:1] == ["read-worker"]:  # started by a member with --experimental-read-workers, not by hand
        from etcdx.worker.run import main as worker_main

        return worker_main(argv[1:])
    if argv[:1] == ["wal"]:
        from etcdx.cli.wal_command import main as wal_main

        return wal_main(argv[1:])
    try:
        config = parse_config(argv, os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if config.show_help:
        sys.stdout.write(usage())
        return 0
    if config.show_version:
        sys.stdout.write(version_text())
        return 0
    try:
        logging_setup.configure(config.log_level, config.log_outputs, config.log_rotation)
    except LogFlagError as exc:
        print(exc, file=sys.stderr)
        return 1
    if config.metrics == "extensive":
        enable_handling_histogram(COUNTS)
    if config.unsafe_no_fsync:
        log.warning(
            "--unsafe-no-fsync: the WAL and the backend are never fsynced; a crash or power loss can lose "
            "acknowledged writes and leave the data dir inconsistent (for tests only)"
        )
    if config.memory_mlock:
        try:
            lock_current_memory()
        except MemoryLockError as exc:
            log.error("cannot start: --experimental-memory-mlock", error=str(exc))
            print(f"etcdx: --experimental-memory-mlock: {exc}", file=sys.stderr)
            return 1
        log.info("locked the process memory in RAM (--experimental-memory-mlock)")
    # The WAL's sync thread must get the GIL back soon after its fsync, even while the event loop is busy with
    # many connections: Python's default 5 ms switch interval made every put wait up to that long per handoff.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    try:
        clients, peers = client_addresses(config), peer_addresses(config)
        metrics_ports = metrics_addresses(config)
        peer_client_tls = _peer_client_tls(config, peers)
    except TlsSetupError as exc:
        log.error("cannot start: TLS", error=str(exc))
        print(f"etcdx: {exc}", file=sys.stderr)
        return 1
    try:
        workers = _worker_plan(config, argv)
    except ValueError as exc:
        log.error("cannot start: read workers", error=str(exc))
        print(f"etcdx: {exc}", file=sys.stderr)
        return 1
    locked: list[BaseException] = []
    stopped: list[BaseException] = []
    bad_auth: list[BaseException] = []
    try:
        trio.run(run, config, clients, peers, peer_client_tls, metrics_ports, workers)
    except* AuthOptionsError as group:  # a JWT key file that cannot be read or does not fit the sign method
        bad_auth.extend(_leaves(group))
    except* DataDirLockedError as group:
        locked.extend(_leaves(group))
    except* MemberStopped as group:
        stopped.extend(_leaves(group))
    if bad_auth:
        log.error("cannot start: auth token", error=str(bad_auth[0]))
        print(f"etcdx: {bad_auth[0]}", file=sys.stderr)
        return 1
    if locked:
        log.error("cannot start: data directory locked", data_dir=config.data_dir, error=str(locked[0]))
        print(f"etcdx: {locked[0]}", file=sys.stderr)
        return 1
    if stopped:
        if isinstance(stopped[0], MemberRemoved):
            return 0  # as etcd: a removed member stops cleanly (it logged why)
        log.error("member stopped", reason=str(stopped[0]))
        return 1
    return 0


def _worker_plan(config: Config, argv: list[str]) -> WorkerPlan | None:
    """--experimental-read-workers: the workers' plan (None: one process). A count given that cannot work here is
    a ValueError; "auto" (the default) is one worker per core beyond the member's own, and none where workers
    cannot work (no http:// or https:// client URL, a data dir too deep for the private unix sockets)."""
    automatic = config.read_workers is None
    count = automatic_read_workers() if automatic else config.read_workers
    if not count:
        return None
    settings = settings_from_config(config)
    socket_path = os.path.abspath(os.path.join(settings.member_dir, "workers.sock"))
    if not any(url.scheme in ("http", "https") for url in config.listen_client_urls):
        problem = "--experimental-read-workers needs at least one http:// or https:// --listen-client-urls"
    elif max(len(socket_path.encode()), len(link_path(socket_path).encode())) > MAX_UNIX_PATH:
        problem = f"--experimental-read-workers: the data dir path is too long for a unix socket: {socket_path}"
    else:
        return WorkerPlan(
            count=count,
            socket_path=socket_path,
            backend_path=os.path.abspath(settings.backend_path),
            map_size=settings.backend_map_size,
            etcd_argv=tuple(argv),
            automatic=automatic,
        )
    if not automatic:
        raise ValueError(problem)
    log.info("serving from one process", reason=problem)
    return None


def automatic_read_workers() -> int:
    """--experimental-read-workers auto: one worker per core this process may run on, beyond the member's own."""
    return max(0, len(os.sched_getaffinity(0)) - 1)


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, in order."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]

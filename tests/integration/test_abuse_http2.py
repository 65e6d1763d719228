"""HTTP/2 attacks on a live etcdx member while a well-behaved gRPC client reads and writes: each attacker is cut
off (closed, GOAWAY, REFUSED_STREAM, or no longer read from), the server's peak RSS grows by less than 256 MiB,
and the good client's requests keep succeeding. Figures (RSS, throughput ratios) are bench/abuse.py's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support import h2_attacks
from tests.support.h2_attacks import ENHANCE_YOUR_CALM, RawH2, h2codec
from tests.support.procs import etcdx_process

ATTACK_SECONDS = 3.0
NEVER_READ_SECONDS = 8.0  # time to fill every buffer on the way and then see a send blocked for 2 s, on a slow box
RSS_GROWTH_LIMIT_MIB = 256


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (proc(5))


class GoodClient(threading.Thread):
    """Puts and ranges one after another on its own connection until stopped; counts successes and failures."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []

    def run(self) -> None:
        with grpc.insecure_channel(self.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            i = 0
            while not self.stop.is_set():
                try:
                    kv.Put(rpc_pb2.PutRequest(key=b"good/%d" % (i % 100), value=b"v" * 100), timeout=10)
                    kv.Range(rpc_pb2.RangeRequest(key=b"good/%d" % (i % 100)), timeout=10)
                    self.ok += 1
                except grpc.RpcError as exc:
                    self.failures.append(str(exc.code()))
                i += 1


@pytest.fixture
def member(tmp_path):
    with etcdx_process(tmp_path).start() as server:
        yield server


def attack(member, name: str, seconds: float = ATTACK_SECONDS) -> h2_attacks.Outcome:
    """Runs attack ``name`` beside a good client; checks the memory bound and that the good client was served."""
    prepare = h2_attacks.PREPARE.get(name)
    if prepare is not None:
        prepare(member.endpoint)
    base = status_kib(member.pid, "VmRSS")
    reset_peak_rss(member.pid)
    good = GoodClient(member.endpoint)
    good.start()
    try:
        outcome = h2_attacks.ATTACKS[name](member.endpoint, time.monotonic() + seconds)
    finally:
        good.stop.set()
        good.join(30)
    growth_mib = (status_kib(member.pid, "VmHWM") - base) / 1024
    assert growth_mib < RSS_GROWTH_LIMIT_MIB, f"{name}: peak RSS grew by {growth_mib:.0f} MiB"
    assert good.ok > 0 and not good.failures, (good.ok, good.failures[:3])
    assert member.proc.poll() is None
    return outcome


def test_ping_flood_from_a_peer_that_never_reads_is_closed(member):
    outcome = attack(member, "ping-flood")
    assert outcome.cut_off >= 1 and outcome.cut_off >= outcome.connections - 1  # the last one may outlive the attack


def test_settings_flood_from_a_peer_that_never_reads_is_no_longer_read(member):
    outcome = attack(member, "settings-flood", seconds=NEVER_READ_SECONDS)
    assert outcome.blocked
    assert outcome.bytes_sent < 64 * 1024 * 1024


def test_huge_window_client_that_never_reads_is_no_longer_read(member):
    outcome = attack(member, "never-read-large-responses", seconds=NEVER_READ_SECONDS)
    assert outcome.blocked
    assert outcome.bytes_sent < 64 * 1024 * 1024


def test_zero_length_continuation_flood_gets_enhance_your_calm(member):
    outcome = attack(member, "continuation-flood")
    assert outcome.cut_off >= 1
    assert outcome.goaway_codes and set(outcome.goaway_codes) == {ENHANCE_YOUR_CALM}


def test_rapid_reset_gets_enhance_your_calm(member):
    outcome = attack(member, "rapid-reset")
    assert outcome.cut_off >= 1
    assert outcome.goaway_codes and set(outcome.goaway_codes) == {ENHANCE_YOUR_CALM}


def test_rapid_reset_over_fresh_connections_meets_the_shared_budget(member):
    outcome = attack(member, "rapid-reset-reconnecting")
    assert ENHANCE_YOUR_CALM in outcome.goaway_codes


def test_100k_hoarded_streams_are_refused_beyond_the_ceiling(member):
    outcome = attack(member, "hoard-100k-streams", seconds=5.0)
    assert outcome.refused_streams >= 100_000 - 4096


def test_hpack_bomb_is_cut_off_with_a_compression_error(member):
    outcome = attack(member, "hpack-bomb")
    assert outcome.cut_off >= 1
    assert outcome.goaway_codes and set(outcome.goaway_codes) == {h2codec.COMPRESSION_ERROR}


def test_streams_of_unfinished_messages_stop_being_read_at_the_request_budget(member):
    outcome = attack(member, "partial-messages", seconds=NEVER_READ_SECONDS)
    # Stalled once the server withholds WINDOW_UPDATEs, or closed (FLOW_CONTROL_ERROR) for sending past them.
    assert outcome.blocked or outcome.cut_off
    assert outcome.bytes_sent < 128 * 1024 * 1024  # the request budget, the connection window, socket buffers


def test_a_request_reset_in_the_same_write_is_not_executed(member):
    """Each write holds a complete Put, its RST_STREAM and a probe (an unknown method, answered at once); the next
    write goes once the probe's answer is in, so that the server reads each write whole."""
    conn = RawH2(member.endpoint)
    for stream_id in range(1, 1001, 4):  # 250 resets: within the burst a connection may reset
        request = conn.request_headers(stream_id, "/etcdserverpb.KV/Put")
        request += conn.message(stream_id, rpc_pb2.PutRequest(key=b"reset/%d" % stream_id).SerializeToString())
        probe = conn.request_headers(stream_id + 2, "/abuse.Probe/Answer", end_stream=True)
        assert conn.send(request + conn.rst(stream_id) + probe)
        deadline = time.monotonic() + 10
        while not any(f[0] == h2codec.HEADERS and f[2] == stream_id + 2 for f in conn.frames(1.0) or []):
            assert time.monotonic() < deadline and not conn.closed
    conn.close()
    with grpc.insecure_channel(member.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        written = kv.Range(rpc_pb2.RangeRequest(key=b"reset/", range_end=b"reset0", count_only=True), timeout=5)
    assert written.count == 0


def test_max_concurrent_streams_flag_is_advertised_and_enforced(tmp_path):
    with etcdx_process(tmp_path, extra_args=("--max-concurrent-streams", "2")).start() as server:
        conn = RawH2(server.endpoint)
        outcome = h2_attacks.Outcome()
        settings = {}
        for _ in range(20):
            frames = conn.frames(0.2) or []
            for frame_type, flags, _, payload in frames:
                if frame_type == h2codec.SETTINGS and not flags & h2codec.FLAG_ACK:
                    settings.update(h2codec.parse_settings(payload))
            if settings:
                break
        assert settings[3] == 2  # SETTINGS_MAX_CONCURRENT_STREAMS
        conn.send(b"".join(conn.request_headers(sid, "/etcdserverpb.KV/Put") for sid in (1, 3, 5)))
        deadline = time.monotonic() + 5
        while not outcome.refused_streams and time.monotonic() < deadline:
            h2_attacks.note(outcome, conn.frames(0.2) or [])
        assert outcome.refused_streams == 1
        conn.close()


def test_pings_without_streams_end_in_too_many_pings(member):
    conn = RawH2(member.endpoint)
    ping = h2codec.encode_frame(h2codec.PING, 0, 0, b"12345678")
    for _ in range(4):  # the first ping is free; three more, sooner than the policy allows, are three strikes
        conn.send(ping)
    outcome = h2_attacks.Outcome()
    conn.read_until_closed(outcome, 10)
    assert conn.closed
    assert outcome.goaway_codes == [ENHANCE_YOUR_CALM] and outcome.goaway_debug == [b"too_many_pings"]
    conn.close()


def test_a_silent_peer_is_pinged_then_closed(tmp_path):
    args = ("--grpc-keepalive-interval", "1s", "--grpc-keepalive-timeout", "1s")
    with etcdx_process(tmp_path, extra_args=args).start() as server:
        conn = RawH2(server.endpoint)
        pings = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frames = conn.frames(0.5)
            if frames is None:
                break
            pings += [f for f in frames if f[0] == h2codec.PING and not f[1] & h2codec.FLAG_ACK]
        assert pings and conn.closed
        conn.close()


def test_a_peer_that_answers_keepalive_pings_stays_connected(tmp_path):
    args = ("--grpc-keepalive-interval", "1s", "--grpc-keepalive-timeout", "1s")
    with etcdx_process(tmp_path, extra_args=args).start() as server:
        conn = RawH2(server.endpoint)
        answered = 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            frames = conn.frames(0.2)
            assert frames is not None, "closed although every ping was answered"
            for frame_type, flags, _, payload in frames:
                if frame_type == h2codec.PING and not flags & h2codec.FLAG_ACK:
                    conn.send(h2codec.encode_frame(h2codec.PING, h2codec.FLAG_ACK, 0, payload))
                    answered += 1
        assert answered >= 2 and not conn.closed
        conn.close()

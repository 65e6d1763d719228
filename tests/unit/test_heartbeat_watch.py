"""HeartbeatWatch: a heartbeat to a peer later than two intervals after the previous one counts as a send
failure, per peer, and nothing counts across a leadership change."""

from etcdx.raft.messages import Message, MessageType
from etcdx.server import metrics
from etcdx.server.heartbeat_watch import HeartbeatWatch


def _failures() -> float:
    return metrics.REGISTRY.get_sample_value("etcd_server_heartbeat_send_failures_total")


def _heartbeat(to: int) -> Message:
    return Message(type=MessageType.HEARTBEAT, to=to)


def test_late_heartbeats_count_per_peer():
    watch = HeartbeatWatch(0.1)
    before = _failures()
    watch.observe([_heartbeat(2), _heartbeat(3), Message(type=MessageType.APP, to=2)], now=10.0)
    watch.observe([_heartbeat(2), _heartbeat(3)], now=10.2)  # exactly two intervals: on time
    assert _failures() == before
    watch.observe([_heartbeat(2)], now=10.5)  # 0.3 s after the previous one to 2
    watch.observe([Message(type=MessageType.APP, to=3)], now=11.0)  # not a heartbeat: not observed
    assert _failures() == before + 1


def test_reset_forgets_the_previous_term():
    watch = HeartbeatWatch(0.1)
    before = _failures()
    watch.observe([_heartbeat(2)], now=1.0)
    watch.reset()
    watch.observe([_heartbeat(2)], now=60.0)
    assert _failures() == before

"""The read workers' applied mark (etcdx/worker/applied_mark.py): what one process publishes another reads,
and a real EtcdServer publishes each apply step's index before it answers any request of that step."""

from __future__ import annotations

import trio

from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.raft.messages import Message, MessageType
from etcdx.server.membership import ChangeKind
from etcdx.server.server import EtcdServer
from etcdx.worker.applied_mark import AppliedMark, mark_path
from tests.support.server_settings import server_settings


def test_a_reader_sees_what_the_member_publishes(tmp_path):
    path = mark_path(str(tmp_path / "workers.sock"))
    member = AppliedMark.create(path, 41)
    reader = AppliedMark.open(path)
    try:
        assert reader.read() == 41
        assert reader.read_if_alone() is None
        member.publish(2**63 - 1, alone=True)  # the largest mark, with the top bit that says "alone"
        assert reader.read() == 2**63 - 1
        assert reader.read_if_alone() == 2**63 - 1
        member.publish(2**62 + 6, alone=False)
        assert (reader.read(), reader.read_if_alone()) == (2**62 + 6, None)
        member.publish(2**62 + 7, alone=True)
        again = AppliedMark.create(path, 7)  # a restarted member starts the file anew, not alone yet
        assert reader.read() == 7
        assert reader.read_if_alone() is None
        again.close()
    finally:
        reader.close()
        member.close()


def test_the_member_publishes_an_index_before_answering_what_it_applied(tmp_path):
    """An answer given in the apply step itself (a callback, as the workers' link answers) already finds the mark
    at the applied index of that step; a member that published afterwards fails this."""

    async def main():
        server = EtcdServer(server_settings(str(tmp_path / "data")))
        published: list[int] = []
        seen_by_answers: list[tuple[int, int]] = []
        server.publish_applied = lambda index, alone: published.append(index)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            with trio.fail_after(20):
                for i in range(5):
                    done = trio.Event()

                    def answered(result, done=done):
                        seen_by_answers.append((published[-1] if published else 0, server.applied_index))
                        done.set()

                    put = rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v")
                    server.propose_nowait(InternalRequest(put=put), answered)
                    await done.wait()
            nursery.cancel_scope.cancel()
        assert len(seen_by_answers) == 5
        assert all(mark == applied for mark, applied in seen_by_answers), seen_by_answers
        assert published == sorted(published)

    trio.run(main)


def test_the_member_publishes_that_it_leads_alone_only_while_it_does(tmp_path):
    """A single member publishes "alone" once it leads with its term's first entry applied, keeps it while a
    learner joins (not a voter), and clears it in the apply step that adds a voter, before that change is
    answered. A member that kept it set after the add fails this; so does one that set it before its term's
    first entry was applied (every earlier write must be within the mark)."""

    async def main():
        server = EtcdServer(server_settings(str(tmp_path / "data")))
        published: list[tuple[int, bool]] = []
        server.publish_applied = lambda index, alone: published.append((index, alone))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            with trio.fail_after(20):
                while not (published and published[-1][1]):
                    await trio.sleep(0.01)
                first_alone = next(index for index, alone in published if alone)
                assert first_alone >= server.node.raft.term_start_index
                learner = rpc_pb2.Member(ID=0x51, peerURLs=["http://127.0.0.1:1"], isLearner=True)
                await server.change_membership(ChangeKind.ADD, learner)
                assert published[-1][1], published[-3:]
                voter = rpc_pb2.Member(ID=0x52, peerURLs=["http://127.0.0.1:2"])
                await server.change_membership(ChangeKind.ADD, voter)
                assert published[-1] == (server.applied_index, False), published[-3:]
            nursery.cancel_scope.cancel()
        assert [index for index, _ in published] == sorted(index for index, _ in published)

    trio.run(main)


def test_a_lone_leader_that_steps_down_clears_alone_before_it_sends_anything(tmp_path):
    """A message of a later term makes the lone leader a follower (say, from a member it still counts as a peer
    after a change it has not applied): it must publish "alone" cleared before it sends any message, since its
    answers (acknowledgements, votes) are what would let another member lead. A member that published the
    change of role only at its next apply step fails this."""

    async def main():
        server = EtcdServer(server_settings(str(tmp_path / "data")))
        events: list[tuple] = []
        server.publish_applied = lambda index, alone: events.append(("publish", alone))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            send = server.transport.send
            server.transport.send = lambda messages: (events.append(("send",)), send(messages))
            with trio.fail_after(20):
                while ("publish", True) not in events:
                    await trio.sleep(0.01)
                mark = len(events)
                later = Message(MessageType.APP, to=server.member_id, sender=0x99, term=server.raft_term + 5)
                server._on_peer_message(later)
                while ("send",) not in events[mark:]:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        after = events[mark:]
        assert ("publish", False) in after
        assert after.index(("publish", False)) < after.index(("send",)), after

    trio.run(main)

"""The read workers' applied mark (etcdx/worker/applied_mark.py): what one process publishes another reads,
and a real EtcdServer publishes each apply step's index before it answers any request of that step."""

from __future__ import annotations

import trio

from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.server import EtcdServer
from etcdx.worker.applied_mark import AppliedMark, mark_path
from tests.support.server_settings import server_settings


def test_a_reader_sees_what_the_member_publishes(tmp_path):
    path = mark_path(str(tmp_path / "workers.sock"))
    member = AppliedMark.create(path, 41)
    reader = AppliedMark.open(path)
    try:
        assert reader.read() == 41
        member.publish(2**63 + 5)  # the whole unsigned word
        assert reader.read() == 2**63 + 5
        again = AppliedMark.create(path, 7)  # a restarted member starts the file anew
        assert reader.read() == 7
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
        server.publish_applied = published.append
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

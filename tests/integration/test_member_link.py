"""The member link (etcdx/worker/link_*.py) end to end in one process: a real unix socket, the member's
serve_link over a method table of every kind, and a worker's MemberLink calling it (unary CALLs and streams)."""

from __future__ import annotations

import functools

import pytest
import trio

from etcdx.errors import EtcdError, StatusCode
from etcdx.net.grpc_metrics import COUNTS
from etcdx.net.grpc_server import (
    BidiStreamMethod,
    DeferredUnaryMethod,
    InlineUnaryMethod,
    RpcContext,
    ServerStreamMethod,
    UnaryMethod,
    flush_deferred_replies,
)
from etcdx.net.listener import open_private_unix_listener
from etcdx.worker.link_client import MemberLink
from etcdx.worker.link_credit import MESSAGE_COST
from etcdx.worker.link_frames import BARRIER_PATH, CANCEL, STREAM_WINDOW
from etcdx.worker.link_member import serve_link

MAX_FRAME = 16 * 1024 * 1024


class Member:
    """A method table: echo kinds, errors, waits; records the contexts it saw."""

    def __init__(self) -> None:
        self.seen: list[RpcContext] = []
        self.later: list = []  # deferred replies not given yet
        self.started = 0
        self.flood_sent = 0  # messages /t/flood has sent
        self.ended: list[str] = []  # how stream handlers ended: "cancelled", or "returned"

    def resolve(self, path: str):
        return {
            "/t/inline": InlineUnaryMethod(self._inline),
            "/t/deferred": DeferredUnaryMethod(self._deferred),
            "/t/at-once": DeferredUnaryMethod(lambda data, ctx, reply: b"now:" + data),
            "/t/async": UnaryMethod(self._async),
            "/t/sleep": UnaryMethod(self._sleep),
            "/t/etcd-error": InlineUnaryMethod(self._etcd_error),
            "/t/bug": InlineUnaryMethod(self._bug),
            BARRIER_PATH: InlineUnaryMethod(lambda data, ctx: b"a worker's own call"),
            "/t/stream": ServerStreamMethod(self._stream),
            "/t/echo": BidiStreamMethod(self._echo),
            "/t/count": ServerStreamMethod(self._count),
            "/t/flood": ServerStreamMethod(self._flood),
            "/t/forever": BidiStreamMethod(self._forever),
            "/t/divert": BidiStreamMethod(self._divert),
            "/t/divert-bug": BidiStreamMethod(self._divert_bug),
        }.get(path)

    def _inline(self, data: bytes, ctx: RpcContext) -> bytes:
        self.seen.append(ctx)
        return b"inline:" + data

    def _deferred(self, data: bytes, ctx: RpcContext, reply) -> None:
        self.later.append(functools.partial(reply, b"later:" + data))

    async def _async(self, data: bytes, ctx: RpcContext) -> bytes:
        await trio.sleep(0.01)
        return b"async:" + data

    async def _sleep(self, data: bytes, ctx: RpcContext) -> bytes:
        self.started += 1
        await trio.sleep_forever()

    def _etcd_error(self, data: bytes, ctx: RpcContext) -> bytes:
        raise EtcdError(StatusCode.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")

    def _bug(self, data: bytes, ctx: RpcContext) -> bytes:
        raise RuntimeError("a bug")

    async def _stream(self, data, ctx, send) -> None:
        raise AssertionError("never called")

    async def _echo(self, messages, ctx, send) -> None:
        """Echoes each message with the call's token, then ends OK at the client's half-close, or fails as
        asked by a message "fail"."""
        async for message in messages:
            if message == b"fail":
                raise EtcdError(StatusCode.FAILED_PRECONDITION, "asked to fail")
            await send(ctx.metadata.get("token", "").encode() + b":" + message)

    async def _count(self, data, ctx, send) -> None:
        for i in range(int(data)):
            await send(b"%d" % i)
        raise EtcdError(StatusCode.OUT_OF_RANGE, "counted")

    async def _flood(self, data, ctx, send) -> None:
        chunk = b"f" * 4096
        while True:
            await send(chunk)
            self.flood_sent += 1

    async def _divert(self, messages, ctx, send) -> None:
        """Takes the messages the link's reader offers (answering from there), except those marked "task:",
        which its own loop answers after a pause (so that the next ones arrive while it holds one)."""

        def take(message: bytes) -> bool:
            return not message.startswith(b"task:") and send.try_send_nowait(b"reader:" + message[:8])

        messages.divert(take)
        async for message in messages:
            if message.startswith(b"task:"):
                await trio.sleep(0.01)
            await send(b"handler:" + message[:8])

    async def _divert_bug(self, messages, ctx, send) -> None:
        """Its reader's ``take`` raises (a bug): the call must end, not the link."""

        def take(message: bytes) -> bool:
            raise RuntimeError("a bug in take")

        messages.divert(take)
        try:
            async for _ in messages:
                pass
            await trio.sleep_forever()
        except trio.Cancelled:
            self.ended.append("cancelled")
            raise

    async def _forever(self, messages, ctx, send) -> None:
        try:
            await send(b"ready")
            await trio.sleep_forever()
        except trio.Cancelled:
            self.ended.append("cancelled")
            raise


async def call(link: MemberLink, path: str, data: bytes = b"x", metadata=None, deadline=None):
    """The outcome: bytes, or (code, text) of the EtcdError."""
    done = trio.Event()
    box = []

    def reply(outcome):
        box.append(outcome)
        done.set()

    link.call(path, data, metadata or {}, deadline, reply)
    with trio.fail_after(5):
        await done.wait()
    assert len(box) == 1
    outcome = box[0]
    return (outcome.code, outcome.message) if isinstance(outcome, EtcdError) else outcome


async def failure_of(stream) -> tuple[StatusCode, str]:
    """(code, text) of the error a stream ends with, its remaining messages read and dropped."""
    with pytest.raises(EtcdError) as failed:
        async for _ in stream.responses():
            pass
    return failed.value.code, failed.value.message


async def first_message(stream) -> bytes:
    """The member's first message on ``stream``; the rest stay to be read."""
    async for message in stream.responses():
        return message
    raise AssertionError("the stream ended without a message")


class Serving:
    """The member's listener and serve_link, which a test can stop and start again."""

    def __init__(self, path: str, member: Member, nursery: trio.Nursery) -> None:
        self.path, self.member, self.nursery = path, member, nursery
        self.scope = trio.CancelScope()

    async def start(self) -> None:
        self.scope = trio.CancelScope()
        await self.nursery.start(self._serve, self.scope)

    async def _serve(self, scope: trio.CancelScope, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            listener = await open_private_unix_listener(self.path)
            task_status.started()
            await serve_link(listener, self.member.resolve, frozenset({"t"}), MAX_FRAME)

    def stop(self) -> None:
        self.scope.cancel()


@pytest.fixture
async def linked(tmp_path, nursery):
    member = Member()
    serving = Serving(str(tmp_path / "link.sock"), member, nursery)
    await serving.start()
    link = MemberLink(serving.path, MAX_FRAME)
    await nursery.start(link.run)
    return member, link, serving


async def test_every_unary_kind_answers_with_the_members_bytes_and_metadata_arrives(linked):
    member, link, _ = linked
    assert await call(link, "/t/inline", b"a", {"token": "secret", "hasleader": "true"}) == b"inline:a"
    assert member.seen[-1].metadata == {"token": "secret", "hasleader": "true"}
    assert member.seen[-1].deadline is None
    assert await call(link, "/t/at-once", b"b") == b"now:b"
    assert await call(link, "/t/async", b"c") == b"async:c"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, link, "/t/deferred", b"d")
        while not member.later:
            await trio.sleep(0.001)
        member.later.pop()()


async def test_errors_arrive_with_the_members_code_and_text(linked):
    _, link, _ = linked
    assert await call(link, "/t/etcd-error") == (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: duplicate key given in txn request",
    )
    assert await call(link, "/t/bug") == (StatusCode.UNKNOWN, "a bug")
    code, text = await call(link, "/t/unknown")
    assert code == StatusCode.UNIMPLEMENTED and "/t/unknown" in text
    code, _ = await call(link, "/t/stream")
    assert code == StatusCode.UNIMPLEMENTED


async def test_the_callers_deadline_ends_the_call_on_the_member(linked):
    member, link, _ = linked
    began = trio.current_time()
    assert await call(link, "/t/sleep", deadline=began + 0.2) == (
        StatusCode.DEADLINE_EXCEEDED,
        "context deadline exceeded",
    )
    assert trio.current_time() - began >= 0.2
    assert member.started == 1
    # already past: answered without running the handler
    assert await call(link, "/t/sleep", deadline=trio.current_time() - 1) == (
        StatusCode.DEADLINE_EXCEEDED,
        "context deadline exceeded",
    )
    assert member.started == 1


async def test_many_calls_at_once_each_get_their_own_answer(linked):
    _, link, _ = linked
    answers = {}

    async def one(i: int) -> None:
        path = ("/t/inline", "/t/async", "/t/at-once")[i % 3]
        answers[i] = await call(link, path, b"%d" % i)

    async with trio.open_nursery() as nursery:
        for i in range(300):
            nursery.start_soon(one, i)
    prefix = (b"inline:", b"async:", b"now:")
    assert answers == {i: prefix[i % 3] + b"%d" % i for i in range(300)}


async def test_relayed_calls_of_one_dispatch_leave_together_at_the_flush(linked):
    """A relayed call (the worker's route for a client's unary call) is queued, not written, until the client
    connection flushes the deferred output once it has dispatched a read's requests; then the calls queued
    meanwhile leave together, and each is answered."""
    _, link, _ = linked
    relay = link.relay("/t/inline").handler
    answers: list = []
    ctx = RpcContext("/t/inline", {}, None, "")
    for i in range(3):
        relay(b"%d" % i, ctx, answers.append)
    queued = link._socket.backlog()
    assert queued > 0  # nothing written yet: the three wait for the flush
    flush_deferred_replies()
    assert link._socket.backlog() == 0  # one flush took all three
    with trio.fail_after(5):
        while len(answers) < 3:
            await trio.sleep(0.001)
    assert answers == [b"inline:0", b"inline:1", b"inline:2"]


async def test_relayed_calls_nobody_flushes_still_leave(linked):
    _, link, _ = linked
    relay = link.relay("/t/inline").handler
    answers: list = []
    relay(b"x", RpcContext("/t/inline", {}, None, ""), answers.append)
    with trio.fail_after(5):
        while not answers:
            await trio.sleep(0.001)
    assert answers == [b"inline:x"]


async def test_a_large_message_crosses_a_full_socket(linked):
    _, link, _ = linked
    big = bytes(range(256)) * (12 * 1024)  # 3 MiB each way: more than a unix socket's buffer holds
    async with trio.open_nursery() as nursery:
        results = []

        async def one() -> None:
            results.append(await call(link, "/t/async", big))

        for _ in range(3):
            nursery.start_soon(one)
    assert results == [b"async:" + big] * 3


async def test_a_lost_link_answers_unavailable_and_connects_again(linked):
    member, link, serving = linked
    outcomes = []
    async with trio.open_nursery() as calls:

        async def waiting() -> None:
            outcomes.append(await call(link, "/t/deferred"))

        calls.start_soon(waiting)
        while not member.later:
            await trio.sleep(0.001)
        serving.stop()  # the member's end goes away with the call unanswered
    assert outcomes == [(StatusCode.UNAVAILABLE, "etcdx: the read worker lost its link to the member")]
    code, _ = await call(link, "/t/inline")  # no connection now: answered at once
    assert code == StatusCode.UNAVAILABLE
    member.later.pop()()  # the old connection's reply, after it ended: dropped, no error
    await serving.start()
    with trio.fail_after(5):
        while (answer := await call(link, "/t/inline", b"z")) != b"inline:z":
            assert answer[0] == StatusCode.UNAVAILABLE
            await trio.sleep(0.02)


async def test_a_bidirectional_stream_relays_both_ways_with_metadata_and_ends_ok(linked):
    _, link, _ = linked
    async with link.open_stream("/t/echo", {"token": "tok"}, None) as stream:
        got = []
        for word in (b"a", b"b", b"c"):
            await stream.send(word)
        stream.close_send()
        with trio.fail_after(5):
            got = [message async for message in stream.responses()]
    assert got == [b"tok:a", b"tok:b", b"tok:c"]


async def test_a_streams_error_arrives_after_its_messages_with_the_members_code_and_text(linked):
    _, link, _ = linked
    count = STREAM_WINDOW // 100  # a few hundred messages: some credit comes back on the way
    got = []
    with trio.fail_after(5):
        async with link.open_stream("/t/count", {}, None) as stream:
            await stream.send(b"%d" % count)
            stream.close_send()
            with pytest.raises(EtcdError) as failed:
                async for message in stream.responses():
                    got.append(message)
    assert got == [b"%d" % i for i in range(count)]
    assert (failed.value.code, failed.value.message) == (StatusCode.OUT_OF_RANGE, "counted")
    with trio.fail_after(5):
        async with link.open_stream("/t/echo", {}, None) as stream:
            await stream.send(b"fail")
            outcome = await failure_of(stream)
    assert outcome == (StatusCode.FAILED_PRECONDITION, "asked to fail")


@pytest.mark.parametrize(
    ("path", "answer"),
    [("/t/inline", b"inline:q"), ("/t/async", b"async:q"), ("/t/at-once", b"now:q")],
)
async def test_a_unary_method_answers_a_stream_with_one_message(linked, path, answer):
    _, link, _ = linked
    with trio.fail_after(5):
        async with link.open_stream(path, {}, None) as stream:
            await stream.send(b"q")
            stream.close_send()
            assert [message async for message in stream.responses()] == [answer]


async def test_a_stream_without_its_request_or_method_ends_as_grpc_go_ends_it(linked):
    _, link, _ = linked
    outcomes = []
    for path in ("/t/count", "/t/nothing-here", "/elsewhere/x"):
        with trio.fail_after(5):
            async with link.open_stream(path, {}, None) as stream:
                stream.close_send()
                outcomes.append(await failure_of(stream))
    assert outcomes == [
        (StatusCode.UNKNOWN, "unexpected EOF"),
        (StatusCode.UNIMPLEMENTED, "unknown method nothing-here for service t"),
        (StatusCode.UNIMPLEMENTED, "unknown service elsewhere"),
    ]


async def test_leaving_a_stream_cancels_its_handler_on_the_member(linked):
    member, link, _ = linked
    with trio.fail_after(5):
        async with link.open_stream("/t/forever", {}, None) as stream:
            assert await first_message(stream) == b"ready"
        while not member.ended:
            await trio.sleep(0.001)
    assert member.ended == ["cancelled"]
    assert await call(link, "/t/inline", b"after") == b"inline:after"  # the link is still well


async def test_a_streams_deadline_ends_it_on_the_member(linked):
    member, link, _ = linked
    with trio.fail_after(5):
        async with link.open_stream("/t/forever", {}, trio.current_time() + 0.2) as stream:
            outcome = await failure_of(stream)
    assert outcome == (StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
    assert member.ended == ["cancelled"]


async def test_a_reader_that_stops_holds_back_only_its_own_stream(linked):
    """Credit: a member handler that sends without end to a caller that reads nothing is held to about one window,
    the caller's side buffers no more, and the link's other calls go on. Reading again lets it go on."""
    member, link, _ = linked
    window_messages = STREAM_WINDOW // 4096
    async with link.open_stream("/t/flood", {}, None) as stream:
        await stream.send(b"")
        stream.close_send()
        with trio.fail_after(5):
            while member.flood_sent < window_messages:
                await trio.sleep(0.001)
        await trio.sleep(0.2)  # time to run past the window, were it not held
        assert member.flood_sent <= window_messages
        assert len(stream._inbox) <= window_messages + 1
        assert await call(link, "/t/inline", b"meanwhile") == b"inline:meanwhile"
        taken = 0
        with trio.fail_after(5):
            async for _ in stream.responses():
                taken += 1
                if taken == 3 * window_messages:
                    break
    assert member.flood_sent >= 3 * window_messages - 1


async def test_a_lost_link_ends_its_streams_unavailable(linked):
    _, link, serving = linked
    async with link.open_stream("/t/forever", {}, None) as stream:
        with trio.fail_after(5):
            assert await first_message(stream) == b"ready"
            serving.stop()
            outcome = await failure_of(stream)
    assert outcome == (
        StatusCode.UNAVAILABLE,
        "etcdx: the read worker lost its link to the member",
    )


async def test_messages_sent_from_the_reader_keep_their_order_with_those_the_route_sends(linked):
    """deliver_to: a message goes straight to the client only when none waits before it and the route's task is
    not sending one (its send may wait for the client's window). The client gets every message once, in order."""
    _, link, _ = linked
    to_client: list[bytes] = []
    direct_sent: list[bytes] = []
    accept = False  # whether the client has room for a message now
    holding, release = trio.Event(), trio.Event()

    def direct(message: bytes) -> bool:
        if accept:
            to_client.append(message)
            direct_sent.append(message)
        return accept

    async def route(stream) -> None:
        async for message in stream.responses():
            if not holding.is_set():  # the first send waits for window, until released
                holding.set()
                await release.wait()
            to_client.append(message)

    async def until(condition) -> None:
        while not condition():
            await trio.sleep(0.001)

    with trio.fail_after(5):
        async with link.open_stream("/t/echo", {}, None) as stream, trio.open_nursery() as nursery:
            stream.deliver_to(direct)
            nursery.start_soon(route, stream)
            await stream.send(b"0")  # no room: the route's task takes it, and waits
            await holding.wait()
            accept = True
            await stream.send(b"1")  # room now, but the route's task is still sending ":0"
            await until(lambda: stream._inbox or direct_sent)
            release.set()
            await until(lambda: len(to_client) == 2)
            await stream.send(b"2")  # nothing waits before it: straight to the client
            await until(lambda: len(to_client) == 3)
            stream.close_send()
    assert to_client == [b":0", b":1", b":2"]
    assert direct_sent == [b":2"]


async def test_a_message_sent_without_a_wait_needs_the_members_credit(linked):
    """LinkStream.try_send_nowait (a client's messages sent from its connection's reader): True while the member
    has room, then False (nothing sent) once a window waits unread; and True, dropped, once the call ended."""
    _, link, _ = linked
    chunk = b"c" * 4096
    async with link.open_stream("/t/forever", {}, None) as stream:  # reads none of its requests
        sent = 0
        while stream.try_send_nowait(chunk):
            sent += 1
            assert sent <= STREAM_WINDOW // len(chunk)
        assert sent == -(-STREAM_WINDOW // (len(chunk) + MESSAGE_COST))  # while credit was above zero
        stream.end(StatusCode.OK, "")  # as the member's END would
        assert stream.try_send_nowait(chunk)


async def test_empty_messages_use_credit_too(linked):
    """A message costs its frame's header beside its bytes: a client sending empty messages (empty protobufs) to a
    member that reads none cannot make it buffer without bound."""
    _, link, _ = linked
    async with link.open_stream("/t/forever", {}, None) as stream:
        sent = 0
        while stream.try_send_nowait(b""):
            sent += 1
            assert sent <= STREAM_WINDOW // MESSAGE_COST + 1
        assert sent == -(-STREAM_WINDOW // MESSAGE_COST)


async def test_a_path_no_method_serves_and_the_workers_own_calls_are_answered_not_counted(linked):
    """As the member's HTTP/2 server does: an unknown path is answered UNIMPLEMENTED and leaves no series in
    /metrics (a client cannot grow it with made-up paths), and a client's stream cannot reach the calls only
    workers make (the barrier), which the member's public ports do not know either."""
    _, link, _ = linked
    outcomes = []
    for path in ("/made-up/path", BARRIER_PATH):
        with trio.fail_after(5):
            async with link.open_stream(path, {}, None) as stream:
                await stream.send(b"")
                stream.close_send()
                outcomes.append(await failure_of(stream))
        assert not any(key[0] == path for key in COUNTS.started)
        assert not any(key[0] == path for key in COUNTS.handled)
    assert outcomes == [
        (StatusCode.UNIMPLEMENTED, "unknown service made-up"),
        (StatusCode.UNIMPLEMENTED, "unknown service etcdx.worker.Member"),
    ]


async def test_streams_a_lost_link_ends_are_counted_cancelled_on_the_member(linked):
    _, link, serving = linked
    before = COUNTS.handled["/t/forever", StatusCode.CANCELLED]
    async with link.open_stream("/t/forever", {}, None) as stream:
        with trio.fail_after(5):
            assert await first_message(stream) == b"ready"
            serving.stop()
            await failure_of(stream)
    with trio.fail_after(5):
        while COUNTS.handled["/t/forever", StatusCode.CANCELLED] == before:
            await trio.sleep(0.001)
    assert COUNTS.handled["/t/forever", StatusCode.CANCELLED] == before + 1


async def test_a_stream_the_worker_leaves_at_its_deadline_is_counted_as_the_members_deadline(linked):
    """The worker's client call ends at its deadline (the client connection cancels the route): the worker sends
    no CANCEL then, the member ends its side by the same deadline and counts DEADLINE_EXCEEDED, as for a direct
    call. A route that leaves before its deadline (the client gave up) cancels the member's side."""
    member, link, _ = linked
    kinds: list[int] = []
    queue = link._socket.queue

    def recording(frame: bytes) -> None:
        kinds.append(frame[4])  # after the frame's length: its kind
        queue(frame)

    link._socket.queue = recording
    exceeded = COUNTS.handled["/t/forever", StatusCode.DEADLINE_EXCEEDED]
    cancelled = COUNTS.handled["/t/forever", StatusCode.CANCELLED]
    deadline = trio.current_time() + 0.2
    with trio.move_on_at(deadline):  # as the worker's connection cancels its route at the client's deadline
        async with link.open_stream("/t/forever", {}, deadline) as stream:
            async for _ in stream.responses():
                pass
    assert CANCEL not in kinds
    with trio.fail_after(5):
        while COUNTS.handled["/t/forever", StatusCode.DEADLINE_EXCEEDED] == exceeded:
            await trio.sleep(0.001)
    assert COUNTS.handled["/t/forever", StatusCode.CANCELLED] == cancelled
    async with link.open_stream("/t/forever", {}, trio.current_time() + 10) as stream:
        async for _ in stream.responses():
            break  # the client gives up long before its deadline
    assert kinds[-1] == CANCEL


async def test_a_stream_handled_from_the_links_reader_keeps_order_and_returns_credit(linked):
    """MemberMessages.divert / MemberSender.try_send_nowait (the watch's requests inline): a message goes to the
    reader's ``take`` only while the handler holds none and none waits before it, so the answers keep the order
    of the messages whoever made them; and a taken message's credit goes back to the worker, so that more than
    a window of them flows."""
    _, link, _ = linked
    padding = b"p" * 4096
    count = 3 * STREAM_WINDOW // len(padding)
    words = [(b"task:%03d" if n % 50 == 7 else b"%08d") % n for n in range(count)]
    async with link.open_stream("/t/divert", {}, None) as stream:
        with trio.fail_after(20):
            for word in words:
                await stream.send(word + padding)
                await trio.sleep(0.002)  # mostly, the handler has asked for the next message by now
            stream.close_send()
            got = [message async for message in stream.responses()]
    assert [message.split(b":", 1)[1] for message in got] == [word[:8] for word in words]
    by_reader = sum(message.startswith(b"reader:") for message in got)
    assert 0 < by_reader < count - len([w for w in words if w.startswith(b"task:")])  # some wait behind a task


async def test_a_divert_that_raises_ends_its_call_not_the_link(linked):
    """What a reader's ``take`` raises ends that call with the status a handler's error gives (UNKNOWN and its
    text), its handler cancelled; the link, every other call on it and later calls go on."""
    member, link, _ = linked
    async with link.open_stream("/t/forever", {}, None) as bystander:
        assert await first_message(bystander) == b"ready"
        async with link.open_stream("/t/divert-bug", {}, None) as stream:
            await trio.sleep(0.05)  # the handler has set its divert and asked for a message
            await stream.send(b"boom")
            with trio.fail_after(5):
                assert await failure_of(stream) == (StatusCode.UNKNOWN, "a bug in take")
            await stream.send(b"after its end")  # dropped: the member has ended it
        assert member.ended == ["cancelled"]
        assert await call(link, "/t/inline", b"still here") == b"inline:still here"

"""The read hub (etcdx/net/read_hub.py) over real socket pairs, with connections that record what reached them:
reads are taken in the hub while the connection's task stays parked, a read that needs the task wakes it, and
the hub never reads a connection whose task is running."""

from __future__ import annotations

import os
import socket

import pytest
import trio

from etcdx.net.read_hub import ReadHub


class Recorder:
    """A connection: takes b"h..." reads in the hub, hands b"T..." reads to its task (which works on each for a
    while before it parks again), raises for b"X...". ``overlaps`` counts reads the hub gave it while its task
    was working on one: the ordering fault the hub exists to rule out."""

    def __init__(self, hub: ReadHub, sock: socket.socket) -> None:
        self.hub = hub
        self.sock = sock
        self.fd = sock.fileno()
        self.received: list[bytes] = []  # every read, in the order the connection saw them
        self.task_reads = 0  # reads that woke the task
        self.working = False
        self.overlaps = 0
        self.task_got = trio.Event()
        self.errors: list[BaseException] = []

    def take_parked(self, data: bytes) -> object | None:
        if self.working:
            self.overlaps += 1
        if data.startswith(b"X"):
            raise ValueError(data.decode())
        if data.startswith(b"T"):
            return data
        self.received.append(data)
        return None

    async def run(self, work_time: float = 0.05) -> None:
        while True:
            try:
                got = await self.hub.wait(self, self.fd)
            except (ValueError, trio.ClosedResourceError) as exc:
                self.errors.append(exc)
                return
            self.task_reads += 1
            if got == b"":
                self.received.append(got)
                return
            self.received.append(got)
            self.working = True
            self.task_got.set()
            await trio.sleep(work_time)
            self.working = False


def pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    return ours, theirs


async def until(condition, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.002)


async def cancellable(run, started=False, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Runs ``run`` (``started``: a function that reports it started) in a scope handed to the caller."""
    with trio.CancelScope() as scope:
        if started:
            await run(task_status=_Relay(task_status, scope))
        else:
            task_status.started(scope)
            await run()


class _Relay:
    def __init__(self, task_status, scope) -> None:
        self._task_status, self._scope = task_status, scope

    def started(self, value=None) -> None:
        self._task_status.started(self._scope)


@pytest.fixture
async def hub(nursery):
    hub = ReadHub(65536)
    await nursery.start(hub.run)
    return hub


async def test_reads_are_taken_in_the_hub_without_waking_the_connection(hub, nursery):
    ours, theirs = pair()
    with ours, theirs:
        connection = Recorder(hub, ours)
        nursery.start_soon(connection.run)
        for n in range(20):
            theirs.send(b"h%d" % n)
            await until(lambda n=n: len(connection.received) == n + 1)
        assert connection.received == [b"h%d" % n for n in range(20)]
        assert connection.task_reads == 0
        theirs.send(b"T-wake")
        await until(lambda: connection.task_reads == 1)
        assert connection.received[-1] == b"T-wake"


async def check_no_read_while_the_task_works(hub, nursery) -> Recorder:
    ours, theirs = pair()
    with ours, theirs:
        connection = Recorder(hub, ours)
        nursery.start_soon(connection.run, 0.1)
        theirs.send(b"T-first")
        await connection.task_got.wait()
        theirs.send(b"h-while-working")  # readable at once; the hub must leave it until the task parks again
        await until(lambda: b"h-while-working" in connection.received)
        await until(lambda: not connection.working)
        await trio.sleep(0.02)  # parked again
        theirs.shutdown(socket.SHUT_WR)  # the task ends (end of stream) before the sockets close
        await until(lambda: connection.received[-1:] == [b""])
    return connection


async def test_a_connection_whose_task_works_is_not_read_by_the_hub(hub, nursery):
    connection = await check_no_read_while_the_task_works(hub, nursery)
    assert connection.overlaps == 0
    assert connection.received == [b"T-first", b"h-while-working", b""]


async def test_planted_a_hub_that_keeps_a_woken_connection_parked_reads_it_while_its_task_works(
    hub, nursery, monkeypatch
):
    """The check above catches the fault: a hub that wakes a connection's task but leaves it parked until the
    task parks again."""
    wait = ReadHub.wait

    async def wait_replacing(self, connection, fd):
        stale = self._parked.get(fd)
        if stale is not None:
            self._unpark(fd, stale)
        return await wait(self, connection, fd)

    monkeypatch.setattr(ReadHub, "_wake", _wake_keeping_the_park)
    monkeypatch.setattr(ReadHub, "wait", wait_replacing)
    connection = await check_no_read_while_the_task_works(hub, nursery)
    assert connection.overlaps == 1


def _wake_keeping_the_park(self, fd, park, *, result=None, error=None):
    """A planted fault: the task is woken for a read but its connection stays parked, its socket in the set
    (the end of the stream still unparks it, so that the run can end)."""
    if not result:
        self._unpark(fd, park)
    park.result, park.error = result, error
    trio.lowlevel.reschedule(park.task)


async def count_reports_of_a_hung_up_socket_while_its_task_works(hub, nursery, monkeypatch) -> int:
    """How many times the hub is told of a connection's socket while its task works on a read, after the peer
    closed it (a hang-up: reported by epoll for any registered socket, whatever its interest)."""
    reports = []
    serve = ReadHub._serve
    ours, theirs = pair()

    def counting(self, fd):
        if fd == ours.fileno():
            reports.append(fd)
        serve(self, fd)

    monkeypatch.setattr(ReadHub, "_serve", counting)
    with ours:
        connection = Recorder(hub, ours)
        nursery.start_soon(connection.run, 0.3)
        theirs.send(b"T-work")
        await connection.task_got.wait()
        before = len(reports)
        theirs.close()  # a unix socket pair: the peer's close is a hang-up at once
        await trio.sleep(0.2)  # the task still works
        during = len(reports) - before
        await until(lambda: connection.received[-1:] == [b""])
    return during


async def test_a_socket_that_hangs_up_while_its_task_works_is_not_reported(hub, nursery, monkeypatch):
    assert await count_reports_of_a_hung_up_socket_while_its_task_works(hub, nursery, monkeypatch) == 0


async def test_planted_a_socket_left_in_the_set_unparked_keeps_the_hub_spinning(hub, nursery, monkeypatch):
    """The check above catches the fault: leaving a woken connection's socket in the set with no interest."""
    monkeypatch.setattr(ReadHub, "_unregister", lambda self, fd: self._epoll.modify(fd, 0))
    assert await count_reports_of_a_hung_up_socket_while_its_task_works(hub, nursery, monkeypatch) > 100


async def test_a_second_task_cannot_wait_for_a_parked_socket(hub, nursery):
    ours, theirs = pair()
    with ours, theirs:
        connection = Recorder(hub, ours)
        nursery.start_soon(connection.run)
        await until(lambda: ours.fileno() in hub._parked)
        with pytest.raises(trio.BusyResourceError):
            await hub.wait(connection, ours.fileno())
        theirs.send(b"h-still-served")
        await until(lambda: connection.received == [b"h-still-served"])


async def test_an_error_taking_a_read_is_raised_in_the_connections_task(hub, nursery):
    ours, theirs = pair()
    with ours, theirs:
        connection = Recorder(hub, ours)
        nursery.start_soon(connection.run)
        theirs.send(b"X-bad frame")
        await until(lambda: connection.errors)
        assert isinstance(connection.errors[0], ValueError)
        assert str(connection.errors[0]) == "X-bad frame"


async def test_the_end_of_the_stream_wakes_the_task_with_no_bytes(hub, nursery):
    ours, theirs = pair()
    with ours:
        connection = Recorder(hub, ours)
        nursery.start_soon(connection.run)
        theirs.send(b"h-last")
        theirs.close()
        await until(lambda: connection.received[-1:] == [b""])
        assert connection.received == [b"h-last", b""]


async def test_a_cancelled_connection_leaves_the_hub_and_the_others_go_on(hub, nursery):
    gone_ours, gone_theirs = pair()
    ours, theirs = pair()
    with gone_ours, gone_theirs, ours, theirs:
        gone = Recorder(hub, gone_ours)
        staying = Recorder(hub, ours)
        nursery.start_soon(staying.run)
        scope = await nursery.start(cancellable, gone.run)
        await until(lambda: gone_ours.fileno() in hub._parked)
        scope.cancel()
        await until(lambda: gone_ours.fileno() not in hub._parked)
        gone_theirs.send(b"h-nobody-waits")  # readable, but its socket is disarmed: not read, not reported
        theirs.send(b"h-served")
        await until(lambda: staying.received == [b"h-served"])
        assert gone.received == []
        assert gone_ours.recv(100) == b"h-nobody-waits"


async def test_a_socket_number_reused_after_a_close_parks_cleanly(hub, nursery):
    first_ours, first_theirs = pair()
    first = Recorder(hub, first_ours)
    scope = await nursery.start(cancellable, first.run)
    first_theirs.send(b"h-one")
    await until(lambda: first.received == [b"h-one"])
    scope.cancel()
    await until(lambda: first_ours.fileno() not in hub._parked)
    number = first_ours.fileno()
    first_ours.close()
    first_theirs.close()
    ours, theirs = pair()
    if ours.fileno() != number:  # the kernel gave it another number: move it to the closed socket's
        moved = socket.socket(fileno=os.dup2(ours.fileno(), number))
        ours.close()
        ours = moved
    with ours, theirs:
        assert ours.fileno() == number
        second = Recorder(hub, ours)
        nursery.start_soon(second.run)
        theirs.send(b"h-two")
        await until(lambda: second.received == [b"h-two"])


async def test_stopping_the_hub_wakes_its_parked_connections(nursery):
    hub = ReadHub(65536)
    ours, theirs = pair()
    with ours, theirs:
        connection = Recorder(hub, ours)
        scope = await nursery.start(cancellable, hub.run, True)
        nursery.start_soon(connection.run)
        await until(lambda: ours.fileno() in hub._parked)
        scope.cancel()
        await until(lambda: connection.errors)
        assert isinstance(connection.errors[0], trio.ClosedResourceError)
        assert not hub.running

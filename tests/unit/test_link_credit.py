"""A link stream's credit (etcdx/worker/link_credit.py) and call ids (link_client.py), without a link."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from etcdx.worker.link_client import MemberLink
from etcdx.worker.link_credit import MESSAGE_COST, StreamCredit
from etcdx.worker.link_frames import STREAM_WINDOW, LinkError


async def test_a_grant_wakes_every_task_waiting_to_send():
    credit = StreamCredit()
    credit.sent(STREAM_WINDOW)
    woken = []

    async def waiter(name: str) -> None:
        assert await credit.wait_to_send()
        woken.append(name)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter, "a")
            nursery.start_soon(waiter, "b")
            await trio.testing.wait_all_tasks_blocked()
            assert woken == []
            credit.granted(STREAM_WINDOW)
    assert sorted(woken) == ["a", "b"]


async def test_the_end_releases_waiters_with_nothing_to_send():
    credit = StreamCredit()
    credit.sent(STREAM_WINDOW)
    async with trio.open_nursery() as nursery:
        outcome = []

        async def waiter() -> None:
            outcome.append(await credit.wait_to_send())

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        credit.close()
    assert outcome == [False]


def test_credit_comes_back_half_a_window_at_a_time_and_a_peer_past_it_breaks_the_protocol():
    credit = StreamCredit()
    size = 1000
    per_message = size + MESSAGE_COST
    received = 0
    while True:
        credit.received(size)
        received += per_message
        if received >= STREAM_WINDOW:
            break
    with pytest.raises(LinkError):
        credit.received(size)  # the peer had no credit left for it
    grants = [credit.consumed(size) for _ in range(received // per_message)]
    assert sum(grants) >= STREAM_WINDOW - per_message
    assert all(grant == 0 or grant >= STREAM_WINDOW // 2 for grant in grants)
    credit.received(size)  # credit handed back: the peer may send again


def test_a_call_id_still_in_flight_is_never_given_again():
    link = MemberLink("/nonexistent/link.sock", 1024)
    link._streams[0xFFFFFFFF] = object()  # a watch opened long ago, still open
    link._pending[0] = lambda outcome: None
    link._ids = itertools.count(0xFFFFFFFF)
    assert link._new_id() == 1  # 0xFFFFFFFF and, after the wrap, 0 are taken

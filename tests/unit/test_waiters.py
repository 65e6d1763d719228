"""Waiters: a proposer parked on its log index gets exactly what apply resolved it with."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from etcdx.server.waiters import Waiters


async def test_resolve_wakes_each_waiter_with_its_result():
    waiters = Waiters()
    got: dict[int, object] = {}

    async def wait(index: int) -> None:
        got[index] = await waiters.wait(index)

    async with trio.open_nursery() as nursery:
        for index in (1, 2, 3):
            nursery.start_soon(wait, index)
        await trio.testing.wait_all_tasks_blocked()
        assert len(waiters) == 3
        waiters.resolve(2, "two")
        waiters.resolve(1, ValueError("one"))
        waiters.resolve(3, None)
    assert got[2] == "two" and isinstance(got[1], ValueError) and got[3] is None
    assert len(waiters) == 0


async def test_a_cancelled_waiter_is_forgotten_and_its_resolve_is_a_no_op():
    waiters = Waiters()
    with trio.move_on_after(0.01) as scope:
        await waiters.wait(7)
    assert scope.cancelled_caught
    assert len(waiters) == 0
    waiters.resolve(7, "late")  # its caller gave up: nothing to wake


async def test_one_waiter_per_index():
    waiters = Waiters()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiters.wait, 1)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError):
            await waiters.wait(1)
        waiters.resolve(1, None)


def test_a_callback_gets_its_result_once():
    waiters = Waiters()
    got: list[object] = []
    waiters.on_resolve(4, got.append)
    with pytest.raises(RuntimeError):
        waiters.on_resolve(4, got.append)
    assert len(waiters) == 1
    waiters.resolve(5, "not mine")
    waiters.resolve(4, "four")
    waiters.resolve(4, "again")
    assert got == ["four"] and len(waiters) == 0

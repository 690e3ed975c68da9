"""``wait_event``: a loop stopped just as its event is set stops (Python 3.11's wait_for would
swallow that cancellation, and a stop awaiting the loop would hang)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from pipsync_lite.waits import wait_event


async def _old_way(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def _stop_as_woken(wait: Callable[[asyncio.Event, float], Awaitable[bool]]) -> bool:
    """A loop woken and cancelled in the same instant: True if it stopped."""
    event = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            await wait(event, 30)
            event.clear()
            rounds += 1

    task = asyncio.create_task(loop())
    for _ in range(3):  # let it reach its wait (each turn of the loop is one step)
        await asyncio.sleep(0)
    event.set()
    for _ in range(2):  # the wake-up is on its way: the event's waiter is resolved
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=2)
    return bool(done)


async def test_a_loop_cancelled_as_its_event_is_set_stops() -> None:
    assert await _stop_as_woken(wait_event)


async def test_wait_event_times_out_and_sees_the_event() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 0.01) is True


@pytest.mark.skipif(not hasattr(asyncio, "timeout"), reason="Python < 3.11")
async def test_the_race_is_real_with_wait_for_on_this_python() -> None:
    """Documents why wait_event exists; if a future Python fixes wait_for this may pass either way."""
    import sys

    if sys.version_info >= (3, 12):
        pytest.skip("wait_for was rewritten in 3.12")
    assert not await _stop_as_woken(_old_way)

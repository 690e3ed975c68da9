"""Waiting for an ``asyncio.Event`` with a time limit, without losing a cancellation.

``asyncio.wait_for(event.wait(), t)`` on Python 3.11 runs the wait as a task of its own; when a
cancellation arrives just as the event is set, it returns normally and the cancellation is lost.
A loop stopped at that instant then runs on, and whoever awaits its end waits for ever (seen:
the risk monitor's stop hanging a daemon's shutdown). ``asyncio.timeout`` has no such window.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it is set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True

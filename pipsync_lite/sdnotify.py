"""systemd's notify protocol: READY, STOPPING and watchdog pings sent from the event loop.

Without ``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op. The watchdog pings come
from a task on the same loop as the webhook and the broker session, so a blocked loop stops
them and systemd restarts the service (``WatchdogSec=`` in the unit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import structlog

log = structlog.get_logger("pipsync_lite.sdnotify")


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send one notification (``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``...). True if sent."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as err:
        log.warning("sd_notify_failed", error=str(err))
        return False
    return True


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Half the watchdog timeout systemd asked for, in seconds; None when there is none."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None


class Watchdog:
    """Pings ``WATCHDOG=1`` at half the configured timeout while the loop runs."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self._environ = environ
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        interval = watchdog_interval(self._environ)
        if interval:
            self._task = asyncio.create_task(self._run(interval), name="sd-watchdog")

    async def _run(self, interval: float) -> None:
        while True:
            notify("WATCHDOG=1", self._environ)
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

"""The asyncio reactor: installed once per loop, Deferreds awaited as futures, no stray reactor."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
from twisted.internet import task
from twisted.internet.defer import Deferred

from pipsync_lite.ctrader import bridge


async def test_installing_again_on_the_same_loop_is_a_no_op() -> None:
    loop = asyncio.get_running_loop()
    bridge.install_reactor(loop)
    bridge.install_reactor(loop)
    assert bridge.reactor_loop() is loop


async def test_installing_on_another_loop_is_refused() -> None:
    other = asyncio.new_event_loop()
    try:
        with pytest.raises(bridge.ReactorError, match="different event loop"):
            bridge.install_reactor(other)
    finally:
        other.close()


async def test_deferreds_are_awaited_through_futures() -> None:
    reactor = bridge.get_reactor()
    assert await bridge.await_deferred(task.deferLater(reactor, 0.01, lambda: "done")) == "done"
    failing: Deferred[None] = Deferred()
    reactor.callLater(0, failing.errback, ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        await bridge.as_future(failing)


async def test_cancelling_the_future_cancels_the_deferred() -> None:
    cancelled = []
    deferred: Deferred[None] = Deferred(lambda d: cancelled.append(True))
    future = bridge.as_future(deferred)
    future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await future
    await asyncio.sleep(0)  # one loop turn: the future's done-callbacks run via call_soon
    assert cancelled == [True]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_importing_the_client_installs_no_reactor() -> None:
    result = run_python("""
        import sys
        import pipsync_lite.ctrader.client, pipsync_lite.ctrader.connection, pipsync_lite.ctrader.protocol
        print("twisted.internet.reactor" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_another_reactor_installed_first_is_reported_clearly() -> None:
    result = run_python("""
        import asyncio
        import twisted.internet.reactor  # installs the default reactor
        from pipsync_lite.ctrader.bridge import ReactorError, install_reactor
        try:
            install_reactor(asyncio.new_event_loop())
        except ReactorError as exc:
            print(exc)
    """)
    assert result.returncode == 0, result.stderr
    assert "another Twisted reactor" in result.stdout


def test_get_reactor_never_installs_the_default() -> None:
    result = run_python("""
        import sys
        from pipsync_lite.ctrader.bridge import ReactorError, get_reactor
        try:
            get_reactor()
        except ReactorError as exc:
            print("refused", "twisted.internet.reactor" in sys.modules)
    """)
    assert result.stdout.strip() == "refused False", result.stderr

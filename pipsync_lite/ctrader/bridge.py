"""Twisted on the asyncio loop: install the asyncio reactor once, and turn Deferreds into futures.

A process has exactly one Twisted reactor, chosen by whoever first imports
``twisted.internet.reactor``. The broker connection must run on the same asyncio loop as
aiohttp, so :func:`install_reactor` installs Twisted's ``AsyncioSelectorReactor`` bound to that
loop, and must run before anything imports ``twisted.internet.reactor`` (importing
``ctrader_open_api`` does; :mod:`pipsync_lite.protos` does not).

What the reactor needs (checked against Twisted 24.3.0's ``asyncioreactor``): the asyncio
reactor never has to be *run*. ``callLater`` schedules straight onto the asyncio loop
(``loop.call_at``), ``connectTCP``/TLS register the socket with ``loop.add_reader`` /
``add_writer``, and Deferreds need no reactor at all. ``reactor.startRunning()`` is only
needed for things started by "startup" triggers: the reactor's thread pool, which Twisted's
own DNS resolvers (``HostnameEndpoint``, ``connectTCP`` with a host *name*) depend on. Without
it a name lookup waits forever. So the client never asks Twisted to resolve names: it resolves
with ``loop.getaddrinfo`` and connects to the address, while TLS still verifies the *name*.
We therefore do not call ``startRunning()`` (which would also start a thread pool whose
non-daemon threads need a ``reactor.stop()`` at exit).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor
    from twisted.internet.defer import Deferred

T = TypeVar("T")

_REACTOR_MODULE = "twisted.internet.reactor"


class ReactorError(RuntimeError):
    """The Twisted reactor is missing, of the wrong kind, or bound to another loop."""


def install_reactor(loop: asyncio.AbstractEventLoop) -> None:
    """Install Twisted's asyncio reactor on ``loop``.

    Idempotent: installing again with the same loop does nothing. Raises ``ReactorError`` if
    a reactor bound to another loop, or another kind of reactor, is already installed.
    """
    existing = sys.modules.get(_REACTOR_MODULE)
    if existing is not None:
        _check_reactor(existing, loop)
        return
    if loop.is_closed():
        raise ReactorError("cannot install the Twisted reactor on a closed event loop")
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)


def _check_reactor(reactor: object, loop: asyncio.AbstractEventLoop | None) -> None:
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    if not isinstance(reactor, AsyncioSelectorReactor):
        raise ReactorError(
            f"another Twisted reactor ({type(reactor).__module__}.{type(reactor).__name__}) is "
            "already installed: something imported twisted.internet.reactor before "
            "install_reactor() ran (e.g. `import ctrader_open_api`)"
        )
    bound = _loop_of(reactor)
    if loop is not None and bound is not loop:
        raise ReactorError(
            "the Twisted asyncio reactor is already installed on a different event loop; "
            "a process can have only one reactor, bound to one loop"
        )


def _loop_of(reactor: AsyncioSelectorReactor) -> asyncio.AbstractEventLoop:
    # Twisted keeps the loop in a private attribute and has no public accessor.
    return reactor._asyncioEventloop  # type: ignore[no-any-return]


def get_reactor() -> AsyncioSelectorReactor:
    """The installed asyncio reactor; ``ReactorError`` if none (never installs the default)."""
    reactor = sys.modules.get(_REACTOR_MODULE)
    if reactor is None:
        raise ReactorError("install_reactor(loop) must be called before the broker client is used")
    _check_reactor(reactor, None)
    return reactor  # type: ignore[return-value]


def reactor_loop() -> asyncio.AbstractEventLoop:
    """The asyncio loop the installed reactor runs on."""
    return _loop_of(get_reactor())


def as_future(deferred: Deferred[T]) -> asyncio.Future[T]:
    """Wrap a Deferred as a future of the reactor's loop. Cancelling the future cancels it.

    A failure of the Deferred raises its original exception from the future; callers
    translate it into our errors at the ``ctrader/`` boundary.
    """
    return deferred.asFuture(reactor_loop())


async def await_deferred(deferred: Deferred[T]) -> T:
    """Await a Deferred from a coroutine running on the reactor's loop."""
    loop = asyncio.get_running_loop()
    if loop is not reactor_loop():
        raise ReactorError("Deferreds can only be awaited on the loop the reactor is installed on")
    return await deferred.asFuture(loop)


def call_later(delay: float, func: Any, *args: Any) -> Any:
    """``reactor.callLater`` (an ``IDelayedCall`` with ``cancel()``/``active()``)."""
    return get_reactor().callLater(delay, func, *args)

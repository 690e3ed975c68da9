"""Local HTTP doubles for the operator features: a recording endpoint (webhook receiver, fake
Telegram Bot API, fake OAuth token endpoint) and a daemon starter with operator options."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pipsync_lite.app import Daemon
from pipsync_lite.simulator import Simulator

API_TOKEN = "test-api-token-0123456789abcdef"


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Endpoint:
    """Records every request; answers with the next of ``statuses`` (then ``status``), after
    ``delay`` seconds, or never while ``hang`` is set."""

    status: int = 200
    statuses: list[int] = field(default_factory=list)
    answer: Callable[[Received], Any] | None = None
    delay: float = 0.0
    hang: bool = False
    requests: list[Received] = field(default_factory=list)
    hanging: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(
            request.method, request.path, dict(request.query), dict(request.headers), await request.read(), time.monotonic()
        )
        self.requests.append(received)
        if self.hang:
            self.hanging += 1
            await asyncio.Event().wait()
        if self.delay:
            await asyncio.sleep(self.delay)  # the double's own slowness, not a test wait
        status = self.statuses.pop(0) if self.statuses else self.status
        payload = self.answer(received) if self.answer is not None else {"ok": 200 <= status < 300}
        return web.json_response(payload, status=status)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint()
    await ep.start()
    yield ep
    await ep.stop()


@pytest.fixture
async def endpoint_factory() -> AsyncIterator[Callable[..., Any]]:
    made: list[Endpoint] = []

    async def make(**kwargs: Any) -> Endpoint:
        ep = Endpoint(**kwargs)
        await ep.start()
        made.append(ep)
        return ep

    yield make
    for ep in made:
        await ep.stop()


@pytest.fixture
async def operator_daemon(sim: Simulator, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start daemons with the API token set and a fast notification backoff; stopped after."""
    from .conftest import daemon_config  # conftest imports this module's fixtures

    started: list[Daemon] = []

    async def start(wait_ready: bool = True, notify_backoff: float = 0.05, **sections: dict[str, Any]) -> Daemon:
        sections.setdefault("server", {}).setdefault("api_token", API_TOKEN)
        daemon = Daemon(daemon_config(sim, tmp_path, **sections), notify_backoff=notify_backoff)
        started.append(daemon)
        await daemon.start()
        if wait_ready:
            assert daemon.broker is not None
            await daemon.broker.wait_ready(10)
        return daemon

    yield start
    for daemon in reversed(started):
        await daemon.stop(drain_timeout=5)


def bearer(token: str = API_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

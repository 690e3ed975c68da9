"""Fixtures for the broker client: the asyncio reactor, a simulator over TLS, a ready client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from pipsync_lite.ctrader.bridge import install_reactor
from pipsync_lite.ctrader.client import ClientSettings, CTraderClient
from pipsync_lite.simulator import Simulator


@pytest_asyncio.fixture(scope="session", autouse=True, loop_scope="session")
async def twisted_reactor() -> None:
    """Twisted's asyncio reactor on the session loop (idempotent: other conftests may too)."""
    install_reactor(asyncio.get_running_loop())


def settings_for(sim: Simulator, **overrides: Any) -> ClientSettings:
    creds = sim.credentials
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": sim.port,
        "ca_file": sim.ca_file,
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "access_token": creds.access_token,
        "refresh_token": creds.refresh_token,
        "account_id": creds.account_id,
        "request_timeout": 5.0,
        "connect_timeout": 5.0,
        "reconnect_base": 0.05,
        "reconnect_max": 0.5,
    }
    values.update(overrides)
    return ClientSettings(**values)


@pytest_asyncio.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=1, host="127.0.0.1", port=0, cert_dir=tmp_path / "sim", tick_interval=None)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest_asyncio.fixture
async def client(sim: Simulator) -> AsyncIterator[CTraderClient]:
    broker = CTraderClient(settings_for(sim))
    await broker.start()
    try:
        assert await broker.wait_ready(10), broker.last_error
        yield broker
    finally:
        await broker.stop()


MakeClient = Callable[..., Awaitable[CTraderClient]]


@pytest_asyncio.fixture
async def make_client(sim: Simulator) -> AsyncIterator[MakeClient]:
    """Start clients with settings for ``sim`` (overridable, incl. ``target=`` another simulator);
    every client is stopped at teardown."""
    started: list[CTraderClient] = []

    async def make(target: Simulator | None = None, **overrides: Any) -> CTraderClient:
        on_tokens = overrides.pop("on_tokens", None)
        broker = CTraderClient(settings_for(target or sim, **overrides), on_tokens=on_tokens)
        started.append(broker)
        await broker.start()
        return broker

    try:
        yield make
    finally:
        for broker in started:
            await broker.stop()


@pytest.fixture
def eurusd(client: CTraderClient) -> Any:
    symbol = client.symbol("EURUSD")
    assert symbol is not None
    return symbol

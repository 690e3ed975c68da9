"""Shared fixtures: the Twisted reactor on the session loop, a simulator, a running daemon."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import structlog

from pipsync_lite.app import Daemon
from pipsync_lite.config import Config
from pipsync_lite.ctrader.bridge import install_reactor
from pipsync_lite.simulator import Simulator, TlsFiles
from pipsync_lite.simulator.tls import generate

T = TypeVar("T")
WEBHOOK_TOKEN = "test-webhook-token-0123456789"


@pytest.fixture(scope="session", autouse=True)
async def twisted_reactor() -> None:
    """One process, one reactor, bound to the one session loop every test runs on."""
    install_reactor(asyncio.get_running_loop())


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The simulator's CA and certificate, generated once for the whole run."""
    return generate(tmp_path_factory.mktemp("sim-tls"))


@pytest.fixture
async def sim(request: pytest.FixtureRequest, tls_files: TlsFiles) -> AsyncIterator[Simulator]:
    """A hedged account; ``@pytest.mark.parametrize("sim", ["netted"], indirect=True)`` for others."""
    account_type = getattr(request, "param", "hedged")
    simulator = Simulator(seed=7, tls_files=tls_files, tick_interval=None, account_type=account_type)
    await simulator.start()
    simulator.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    yield simulator
    await simulator.stop()


def daemon_config(sim: Simulator, tmp_path: Path, **sections: dict[str, Any]) -> Config:
    creds = sim.credentials
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "webhook_token": WEBHOOK_TOKEN},
        "ctrader": {
            "host": "localhost",
            "port": sim.port,
            "ca_file": str(sim.ca_file),
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "access_token": creds.access_token,
            "refresh_token": creds.refresh_token,
            "account_id": creds.account_id,
            "request_timeout_seconds": 3,
        },
        "storage": {"path": str(tmp_path / "trades.db")},
        "logging": {"level": "debug"},
        # These tests repeat alerts on purpose (two buys, two positions); the same-body
        # duplicate window (default 60 s) has its own tests in test_guard_e2e.
        "risk": {"dedupe_window_seconds": 0},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:  # a list section (notify)
            data[section] = values
    return Config.model_validate(data)


StartDaemon = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def start_daemon(sim: Simulator, tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """Start a daemon against ``sim`` (sections override the config); stopped afterwards."""
    started: list[Daemon] = []

    async def start(wait_ready: bool = True, **sections: dict[str, Any]) -> Daemon:
        daemon = Daemon(daemon_config(sim, tmp_path, **sections))
        started.append(daemon)
        await daemon.start()
        if wait_ready:
            assert daemon.broker is not None
            await daemon.broker.wait_ready(10)
        return daemon

    yield start
    for daemon in reversed(started):
        await daemon.stop(drain_timeout=5)


@pytest.fixture
async def daemon(start_daemon: StartDaemon) -> Daemon:
    return await start_daemon()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def eventually(check: Callable[[], T | Awaitable[T]], timeout: float = 5.0) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result  # type: ignore[misc]
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def captured_logs() -> Any:
    """structlog events emitted during the test (structlog.testing.capture_logs)."""
    with structlog.testing.capture_logs() as events:
        yield events


# Fixtures of the operator features (notify, read API, status page, CLI): local HTTP doubles.
from .fakes import endpoint, endpoint_factory, operator_daemon  # noqa: E402, F401

"""Fixtures: a started simulator per test, and authorized wire clients against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pipsync_lite.simulator import Simulator

from .wire import WireClient

Connect = Callable[..., Awaitable[WireClient]]


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=7, cert_dir=tmp_path, tick_interval=None)
    await simulator.start()
    yield simulator
    await simulator.stop()
    assert not simulator.internal_errors


@pytest.fixture
async def connect(sim: Simulator) -> AsyncIterator[Connect]:
    """Open wire clients (authorized unless ``authorize=False``); all closed afterwards."""
    opened: list[WireClient] = []

    async def open_client(authorize: bool = True) -> WireClient:
        client = await WireClient.connect(sim)
        opened.append(client)
        if authorize:
            await client.authorize(sim.credentials)
        return client

    yield open_client
    for client in opened:
        await client.close()


@pytest.fixture
async def client(connect: Connect) -> WireClient:
    return await connect()

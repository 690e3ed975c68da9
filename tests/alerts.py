"""Helpers for the end-to-end alert tests: send an alert, wait for its execution, read the account."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from pipsync_lite.app import Daemon
from pipsync_lite.simulator import Simulator
from pipsync_lite.simulator.views import OrderView

from .test_webhook_e2e import post, settled

#: Run a test on a hedged and on a netted account (the ``sim`` fixture takes the account type).
BOTH = pytest.mark.parametrize("sim", ["hedged", "netted"], indirect=True)
NETTED = pytest.mark.parametrize("sim", ["netted"], indirect=True)

LOT = 10_000_000  # EURUSD volume of one lot


async def send(http: aiohttp.ClientSession, daemon: Daemon, body: str | dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST one alert (a dict as JSON, a string as TradingView's text/plain); (status, answer)."""
    content_type = "application/json" if isinstance(body, dict) else "text/plain"
    status, answer, _ = await post(http, daemon, body, content_type)
    return status, answer


async def execute(http: aiohttp.ClientSession, daemon: Daemon, body: str | dict[str, Any]) -> dict[str, Any]:
    """Send an alert that must be accepted and carried out; returns the 202 answer."""
    status, answer = await send(http, daemon, body)
    assert status == 202, answer
    row = await settled(daemon, answer["signal_id"])
    assert row["status"] == "executed", row
    return answer


async def refused(
    http: aiohttp.ClientSession, daemon: Daemon, sim: Simulator, body: str | dict[str, Any], status: int
) -> dict[str, Any]:
    """Send an alert that must be refused with ``status``, and check nothing reached the broker."""
    before = len(_trading(sim))
    got, answer = await send(http, daemon, body)
    assert got == status, answer
    assert _trading(sim)[before:] == []
    return answer


def _trading(sim: Simulator) -> list[str]:
    names = {"ProtoOANewOrderReq", "ProtoOAClosePositionReq", "ProtoOACancelOrderReq",
             "ProtoOAAmendOrderReq", "ProtoOAAmendPositionSLTPReq"}
    return [r.name for r in sim.requests if r.name in names]


def holdings(sim: Simulator, symbol: str = "EURUSD") -> list[tuple[str, int]]:
    """The symbol's open positions as (side, volume), oldest first."""
    return [(p.side, p.volume) for p in sim.positions() if p.symbol == symbol]


def pending(sim: Simulator) -> list[OrderView]:
    """The user's resting orders (not the positions' SL/TP orders)."""
    return [o for o in sim.orders() if not o.closing]

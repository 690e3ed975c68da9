"""The full guard end to end: HTTP alert → guard → simulator, with the clock in the test's hands."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipsync_lite.app import Daemon
from pipsync_lite.events import Event
from pipsync_lite.simulator import Simulator

from .conftest import daemon_config, eventually
from .test_webhook_e2e import post, settled

D = Decimal


class FakeClock:
    """The engine's and monitor's time; moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


Start = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def start(sim: Simulator, tmp_path: Path) -> AsyncIterator[Start]:
    """A daemon with an injected clock and a fast risk monitor."""
    started: list[Daemon] = []

    async def start_(clock: FakeClock | None = None, **sections: dict[str, Any]) -> Daemon:
        options: dict[str, Any] = {"monitor_interval": 0.05}
        if clock is not None:
            options["clock"] = clock
        daemon = Daemon(daemon_config(sim, tmp_path, **sections), **options)
        started.append(daemon)
        await daemon.start()
        assert daemon.broker is not None
        await daemon.broker.wait_ready(10)
        return daemon

    yield start_
    for daemon in reversed(started):
        await daemon.stop(drain_timeout=5)


async def internal_signals(daemon: Daemon) -> list[dict[str, Any]]:
    """Signals the daemon recorded for its own actions (flattening)."""
    return [r for r in await daemon.store.signals() if r["dialect"] == "internal"]


def far_from_boundary() -> tuple[FakeClock, str]:
    """A clock at the real time and a day boundary 12 hours away: real deal times stay in 'today'."""
    now = datetime.now(UTC)
    return FakeClock(now), f"{(now.hour + 12) % 24:02d}:00"


# -- sizing -----------------------------------------------------------------------------------


async def test_risk_percent_sizes_from_the_stop_and_the_balance(
    start: Start, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    daemon = await start(risk={"risk_percent": 1})
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "sl_pips": 27})
    assert status == 202, body
    # 1% of 10,000 USD = 100 USD over 27 pips at 10 USD a pip per lot: 0.370 → 0.37 lots.
    assert body["lots"] == "0.37"
    assert body["notes"] == ["lots 0.37 sized by 1% of balance 10000.00 USD: 100.00 USD at 27 pips × 10.00 USD per pip per lot"]
    await settled(daemon, body["signal_id"])
    assert [p.volume for p in sim.positions()] == [3_700_000]


@pytest.mark.parametrize(
    ("symbol", "prices", "lots"),
    [
        # USDJPY: a pip of a lot is 1,000 JPY = 6.667 USD at the mid 150.000: 100 / (20 × 6.667) = 0.75.
        ("USDJPY", {"USDJPY": ("149.990", "150.010")}, "0.75"),
        # EURGBP: 10 GBP a pip, converted through GBPUSD's mid 1.25: 100 / (20 × 12.5) = 0.40.
        ("EURGBP", {"GBPUSD": ("1.24990", "1.25010")}, "0.4"),
    ],
)
async def test_risk_sizing_converts_through_the_live_conversion_pair(
    start: Start, sim: Simulator, http: aiohttp.ClientSession, symbol: str, prices: dict, lots: str
) -> None:
    for name, (bid, ask) in prices.items():
        sim.set_price(name, bid=D(bid), ask=D(ask))
    daemon = await start(risk={"risk_money": 100})
    status, body, _ = await post(http, daemon, {"action": "sell", "symbol": symbol, "sl_pips": 20})
    assert status == 202, body
    assert D(body["lots"]) == D(lots)
    await settled(daemon, body["signal_id"])
    assert [p.volume for p in sim.positions()] == [int(D(lots) * 10_000_000)]


async def test_alert_risk_without_a_stop_is_refused_and_lots_win_over_risk(
    start: Start, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    daemon = await start(risk={"risk_percent": 1, "max_lots": 1, "on_excess": "clamp"})
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "risk": 2})
    assert (status, body["rule"]) == (422, "risk_sizing")
    assert "needs a stop loss" in body["detail"]
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 3, "risk": 2, "sl_pips": 10})
    assert status == 202 and body["lots"] == "1" and body["notes"] == ["lots 3.00 clamped to max_lots 1.00"]


async def test_default_stops_are_applied_to_the_order(start: Start, sim: Simulator, http: aiohttp.ClientSession) -> None:
    daemon = await start(risk={"default_sl_pips": 15, "default_tp_pips": 30, "require_sl": True})
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    assert status == 202, body
    await settled(daemon, body["signal_id"])
    [position] = sim.positions()
    assert position.stop_loss == position.entry_price - D("0.00150")
    assert position.take_profit == position.entry_price + D("0.00300")


# -- loss limits and the kill switch ----------------------------------------------------------


async def test_daily_loss_engages_the_kill_switch_until_the_next_trading_day(
    start: Start, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    clock, boundary = far_from_boundary()
    daemon = await start(clock, risk={"max_daily_loss": 5, "flatten_on_breach": True, "day_boundary": boundary})
    engaged: list[Event] = []
    daemon.events.subscribe(lambda e: engaged.append(e) if e.type == "kill_switch.engaged" else None)
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.1})
    assert status == 202
    await settled(daemon, body["signal_id"])
    sim.set_price("EURUSD", bid=D("1.09900"), ask=D("1.09910"))  # -11 USD on 0.1 lot
    await eventually(lambda: engaged, timeout=5)
    assert engaged[0].data["cause"] == "max_daily_loss"
    assert engaged[0].data["reason"].startswith("daily loss 11.")
    await eventually(lambda: not sim.positions())  # flatten_on_breach
    [row] = await internal_signals(daemon)
    assert (row["action"], row["rule"]) == ("close_all", "max_daily_loss")
    [history] = [h for h in await daemon.engine.kill_switch.history() if h["state"] == "on"]
    assert history["cause"] == "max_daily_loss" and history["until"]

    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.01})
    assert (status, body["rule"]) == (422, "kill_switch")
    assert "kill switch engaged by max_daily_loss: daily loss" in body["detail"]

    clock.advance(days=1)
    daemon.monitor.wake()
    await eventually(lambda: daemon.engine.kill_switch.state(clock()) is None)
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.01})
    assert status == 202, body


async def test_consecutive_losses_engage_it_and_kill_off_overrides_for_the_day(
    start: Start, sim: Simulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    clock, boundary = far_from_boundary()
    daemon = await start(clock, risk={"max_consecutive_losses": 2, "day_boundary": boundary})
    for n in range(2):
        status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.01, "sl_pips": 5, "id": f"l{n}"})
        await settled(daemon, body["signal_id"])
        sim.set_price("EURUSD", bid=D("1.09900"), ask=D("1.09910"))  # the stop is hit
        await eventually(lambda: not sim.positions())
        sim.set_price("EURUSD", bid=D("1.10000"), ask=D("1.10010"))
    await eventually(lambda: daemon.engine.kill_switch.state(clock()) is not None)
    assert daemon.engine.kill_switch.state(clock()).cause == "max_consecutive_losses"
    async with http.post(f"{daemon.base_url}/admin/kill_switch", json={"state": "off"}) as response:
        assert response.status == 404  # no api_token: the admin API is off
    await daemon.engine.kill_switch.release(clock(), day=_day(daemon, clock))
    daemon.monitor.wake()
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.01, "id": "after"})
    # The kill switch stays off for the day, but the rule itself still refuses entries.
    assert (status, body["rule"]) == (422, "max_consecutive_losses")
    assert daemon.engine.kill_switch.state(clock()) is None


def _day(daemon: Daemon, clock: FakeClock) -> str:
    from pipsync_lite.windows import trading_day_label

    risk = daemon.config.risk
    return trading_day_label(clock(), risk.day_boundary, risk.zone)


# -- trading windows --------------------------------------------------------------------------

FRIDAY_NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SESSION = [{"days": "mon-fri", "start": "08:00", "end": "17:00"}]


async def test_windows_block_entries_outside_allow_exits_and_flatten_at_close(
    start: Start, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock(FRIDAY_NOON)
    daemon = await start(clock, risk={"trading_windows": SESSION, "timezone": "Europe/London", "flatten_at_close": True})
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.01})
    assert status == 202
    await settled(daemon, body["signal_id"])
    await eventually(lambda: daemon.monitor._inside.get("EURUSD") is True)
    clock.advance(hours=5, minutes=1)  # 17:01 in London
    daemon.monitor.wake()
    await eventually(lambda: not sim.positions())
    [internal] = await internal_signals(daemon)
    assert internal["rule"] == "flatten_at_close" and "Fri 17:01 Europe/London" in internal["reason"]

    clock.advance(days=1)  # Saturday
    status, body, _ = await post(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": 0.01})
    assert (status, body["rule"]) == (422, "trading_windows")
    assert body["detail"] == "outside trading_windows: Sat 17:01 Europe/London is not in mon-fri 08:00-17:00"


async def test_exits_pass_outside_the_windows(start: Start, sim: Simulator, http: aiohttp.ClientSession) -> None:
    clock = FakeClock(FRIDAY_NOON)
    daemon = await start(clock, risk={"trading_windows": SESSION})
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.01})
    await settled(daemon, body["signal_id"])
    clock.advance(hours=10)
    status, body, _ = await post(http, daemon, {"action": "close", "symbol": "EURUSD"})
    assert status == 202
    await settled(daemon, body["signal_id"])
    assert sim.positions() == []


# -- freshness, rate, duplicates --------------------------------------------------------------


async def test_stale_alerts_and_far_prices_are_refused(start: Start, sim: Simulator, http: aiohttp.ClientSession) -> None:
    clock = FakeClock(FRIDAY_NOON)
    daemon = await start(clock, risk={"max_signal_age_seconds": 30, "max_deviation_pips": 3})
    stale = {"action": "buy", "symbol": "EURUSD", "time": "2026-11-20T11:59:00Z"}
    status, body, _ = await post(http, daemon, stale)
    assert (status, body["detail"]) == (422, "age 60 s > max_signal_age_seconds 30 (time 2026-11-20T11:59:00Z)")
    far = {"action": "buy", "symbol": "EURUSD", "time": "2026-11-20T11:59:50Z", "signal_price": "1.09950"}
    status, body, _ = await post(http, daemon, far)
    assert (status, body["rule"]) == (422, "max_deviation_pips")
    assert body["detail"] == "deviation 6 pips > max_deviation_pips 3 (signal_price 1.09950, ask 1.10010)"


async def test_rate_limit_answers_429_with_retry_after_and_stores_the_alert(
    start: Start, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock(FRIDAY_NOON)
    daemon = await start(clock, server={"rate_limit": {"per_minute": 30, "burst": 2}})
    answers = []
    for n in range(3):
        status, body, response = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "id": f"r{n}"})
        answers.append((status, response.headers.get("Retry-After")))
    assert answers == [(202, None), (202, None), (429, "2")]  # one alert every 2 s
    assert body["status"] == 429 and body["type"] == "/problems/rate_limited"
    row = await daemon.store.signal(body["signal_id"])
    assert (row["status"], row["action"], row["symbol"]) == ("rate_limited", "buy", "EURUSD")
    clock.advance(seconds=2)
    status, _, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "id": "r3"})
    assert status == 202


async def test_same_body_within_the_window_is_a_duplicate_across_restarts(
    start: Start, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock(FRIDAY_NOON)
    daemon = await start(clock, risk={"dedupe_window_seconds": 60})
    alert = '{"action": "buy", "symbol": "EURUSD"}'
    status, first, _ = await post(http, daemon, alert)
    assert status == 202
    status, second, _ = await post(http, daemon, alert + "\n")
    assert (status, second) == (200, {"signal_id": first["signal_id"], "status": "duplicate"})
    await settled(daemon, first["signal_id"])
    await daemon.stop()
    clock.advance(seconds=59)
    daemon = await start(clock, risk={"dedupe_window_seconds": 60})
    status, third, _ = await post(http, daemon, alert)
    assert (status, third["status"]) == (200, "duplicate")
    clock.advance(seconds=2)
    status, fourth, _ = await post(http, daemon, alert)
    assert status == 202 and fourth["signal_id"] != first["signal_id"]


async def test_rejected_alerts_are_not_remembered_as_duplicates(start: Start, http: aiohttp.ClientSession) -> None:
    daemon = await start(risk={"max_lots": 1})
    alert = {"action": "buy", "symbol": "EURUSD", "lots": 2}
    assert (await post(http, daemon, alert))[0] == 422
    assert (await post(http, daemon, alert))[0] == 422

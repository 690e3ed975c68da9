"""The day's numbers end to end: alerts → simulator → ledger, the running totals against the
trade log's recomputation, and the floating P/L asked of the broker in the background."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import aiohttp

from pipsync_lite.app import Daemon
from pipsync_lite.floating import REFRESH_EVERY
from pipsync_lite.losses import DayStats
from pipsync_lite.simulator import Simulator
from pipsync_lite.store import utcnow_iso
from pipsync_lite.tally import DayTotals

from .conftest import eventually
from .test_guard_e2e import FakeClock, Start, far_from_boundary, start  # noqa: F401 (fixture)
from .test_webhook_e2e import post, settled

D = Decimal
NEW_YORK = "America/New_York"
UNREALIZED = "ProtoOAGetPositionUnrealizedPnLReq"


async def as_recomputed(daemon: Daemon, clock: FakeClock) -> DayStats:
    """The day's numbers the guard reads, checked against ``DayTotals.load`` (the SQL)."""
    assert daemon.ledger is not None and daemon.engine is not None
    await daemon.ledger.flush()
    stats = await daemon.engine.losses.stats(daemon.config.risk, clock(), equity=False)
    assert stats is not None
    oracle = await DayTotals.load(daemon.store.db, utcnow_iso(stats.day_start))
    assert (stats.realized, stats.trades, stats.consecutive_losses) == (
        oracle.realized, oracle.trades, oracle.consecutive_losses,
    )  # fmt: skip
    return stats


async def entry(http: aiohttp.ClientSession, daemon: Daemon, **fields: object) -> int:
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.01, **fields})
    assert status == 202, body
    await settled(daemon, body["signal_id"])
    return int(body["signal_id"])


async def all_closed(daemon: Daemon) -> None:
    """Until the trade log holds every close (the ledger records them as the events arrive)."""

    async def no_open() -> bool:
        return not await daemon.store.positions("open")

    await eventually(no_open)


async def stopped_out(http: aiohttp.ClientSession, daemon: Daemon, sim: Simulator) -> None:
    await entry(http, daemon, sl_pips=5)
    sim.set_price("EURUSD", bid=D("1.09900"), ask=D("1.09910"))
    await all_closed(daemon)
    sim.set_price("EURUSD", bid=D("1.10000"), ask=D("1.10010"))


async def test_the_totals_follow_a_day_of_trading_through_a_restart_and_a_rollover(
    start: Start,  # noqa: F811 (the fixture imported above)
    sim: Simulator,
    http: aiohttp.ClientSession,
) -> None:
    """Wins, stop-outs, commissions, a refused and a failed entry, a restart mid-day, then the
    next trading day in New York (boundary 12 hours away): the numbers the guard reads are the
    trade log's, and the day's entries and losing streak are right."""
    now = datetime.now(UTC)
    clock = FakeClock(now)
    boundary = f"{(now.astimezone(ZoneInfo(NEW_YORK)).hour + 12) % 24:02d}:00"
    risk = {"timezone": NEW_YORK, "day_boundary": boundary, "max_lots": 1}
    daemon = await start(clock, risk=risk)

    await entry(http, daemon)  # a win, closed by an alert
    sim.set_price("EURUSD", bid=D("1.10100"), ask=D("1.10110"))
    status, body, _ = await post(http, daemon, {"action": "close", "symbol": "EURUSD"})
    await settled(daemon, body["signal_id"])
    await all_closed(daemon)
    sim.set_price("EURUSD", bid=D("1.10000"), ask=D("1.10010"))
    await stopped_out(http, daemon, sim)
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 2})
    assert (status, body["rule"]) == (422, "max_lots")  # refused: not a trade
    sim.faults.reject_next_order("NOT_ENOUGH_MONEY")
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.01})
    assert (await settled(daemon, body["signal_id"]))["status"] == "failed"  # failures do not count
    await stopped_out(http, daemon, sim)
    stats = await as_recomputed(daemon, clock)
    assert (stats.trades, stats.consecutive_losses) == (3, 2) and stats.realized < 0

    await daemon.stop()
    daemon = await start(clock, risk=risk)
    again = await as_recomputed(daemon, clock)
    assert (again.day, again.realized, again.trades, again.consecutive_losses) == (
        stats.day, stats.realized, stats.trades, stats.consecutive_losses,
    )  # fmt: skip
    await stopped_out(http, daemon, sim)
    assert (await as_recomputed(daemon, clock)).consecutive_losses == 3

    clock.advance(days=1)
    await entry(http, daemon)
    tomorrow = await as_recomputed(daemon, clock)
    assert tomorrow.day != stats.day and tomorrow.trades == 1
    assert tomorrow.realized == 0  # the simulator stamps deals with the real time: yesterday's


async def test_quick_entries_read_the_floating_pnl_from_memory_and_a_big_loss_still_engages(
    start: Start,  # noqa: F811 (the fixture imported above)
    sim: Simulator,
    http: aiohttp.ClientSession,
) -> None:
    """30 entries in a row under max_daily_loss, with positions open and the risk monitor reading
    every 50 ms: the broker is asked for the floating P/L about once a second, not once per
    entry (nor per check); when the market turns, the loss still engages the kill switch."""
    clock, boundary = far_from_boundary()
    daemon = await start(clock, risk={"max_daily_loss": 100, "day_boundary": boundary})
    await entry(http, daemon)
    asked = len(sim.requests_named(UNREALIZED))
    began = time.monotonic()
    for _ in range(30):
        await entry(http, daemon)
    elapsed = time.monotonic() - began
    during = len(sim.requests_named(UNREALIZED)) - asked
    assert during <= 2 + elapsed / REFRESH_EVERY, (during, elapsed)
    assert len(sim.positions()) == 31

    sim.set_price("EURUSD", bid=D("1.09000"), ask=D("1.09010"))  # 31 × 0.01 lot × 100 pips: -310 USD
    state = await eventually(lambda: daemon.engine.kill_switch.state(clock()), timeout=10)
    assert state.cause == "max_daily_loss" and "unrealized -3" in state.reason
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.01})
    assert (status, body["rule"]) == (422, "kill_switch")

"""End to end, the orders an entry becomes: types, time in force and expiry, SL/TP modes, trailing,
and the field errors that stop an alert before anything is sent; on hedged and netted accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from pipsync_lite.app import Daemon
from pipsync_lite.simulator import Simulator

from .alerts import BOTH, LOT, execute, pending, refused, send
from .conftest import eventually
from .test_webhook_e2e import settled

D = Decimal


def _sent(sim: Simulator) -> Any:
    """The last NewOrderReq the broker received."""
    return sim.requests_named("ProtoOANewOrderReq")[-1].message


# -- order types -----------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize(
    ("alert", "order_type", "limit", "stop"),
    [
        ({"price": "1.09"}, "LIMIT", D("1.09000"), None),  # below the ask: waits for a dip
        ({"price": "1.11"}, "STOP", None, D("1.11000")),  # above the ask: a breakout
        ({"order_type": "stop", "price": "1.11"}, "STOP", None, D("1.11000")),
        ({"order_type": "limit", "limit_price": "1.095"}, "LIMIT", D("1.09500"), None),
        ({"stop_price": "1.105"}, "STOP", None, D("1.10500")),  # CrossTrade's STOPMARKET price
    ],
)
async def test_pending_order_types(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession,
    alert: dict[str, Any], order_type: str, limit: Decimal | None, stop: Decimal | None,
) -> None:
    answer = await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1", **alert})
    [order] = pending(sim)
    assert (order.order_type, order.limit_price, order.stop_price) == (order_type, limit, stop)
    assert (order.volume, order.time_in_force) == (LOT // 10, "GOOD_TILL_CANCEL")
    [stored] = await daemon.store.orders_for(answer["signal_id"])
    assert (stored["status"], stored["order_type"], stored["broker_order_id"]) == ("accepted", order_type.lower(), order.order_id)


@BOTH
async def test_stop_limit_with_a_limit_price_fills_only_up_to_its_limit(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "order_type": "stop_limit", "price": "1.1010", "limit_price": "1.1015"})
    assert (_sent(sim).orderType, _sent(sim).slippageInPoints) == (6, 50)  # STOP_LIMIT, 50 points to its limit
    [order] = pending(sim)
    assert (order.order_type, order.stop_price) == ("STOP_LIMIT", D("1.10100"))
    sim.set_price("EURUSD", bid=D("1.10200"), ask=D("1.10210"))  # triggered, but above the limit
    assert sim.positions() == []
    sim.set_price("EURUSD", bid=D("1.10130"), ask=D("1.10140"))
    [position] = await eventually(sim.positions)
    assert position.entry_price == D("1.10140")


async def test_stop_limit_from_crosstrade_with_max_slippage_pips(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, "command=PLACE; action=SELL; instrument=EURUSD; qty=0.2; order_type=STOPLIMIT; stop_price=1.0950; max_slippage_pips=2")
    [order] = pending(sim)
    assert (order.order_type, order.side, order.stop_price, order.volume) == ("STOP_LIMIT", "SELL", D("1.09500"), 2 * LOT // 10)
    assert _sent(sim).slippageInPoints == 20


@BOTH
async def test_max_slippage_pips_makes_a_market_range_order_around_the_signal_price(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "signal_price": "1.1000", "max_slippage_pips": 2})
    sent = _sent(sim)
    assert (sent.orderType, sent.baseSlippagePrice, sent.slippageInPoints) == (5, 1.1, 20)  # MARKET_RANGE
    [position] = sim.positions()
    assert position.entry_price == D("1.10010")


@BOTH
async def test_market_range_beyond_the_slippage_is_not_filled(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, answer = await send(http, daemon, {"action": "buy", "symbol": "EURUSD", "order_type": "market_range", "price": "1.0990", "max_slippage_pips": 1})
    assert status == 202
    row = await settled(daemon, answer["signal_id"])
    assert row["status"] == "failed" and "ORDER_CANCELLED" in row["reason"]
    assert sim.positions() == []
    assert _sent(sim).baseSlippagePrice == 1.099  # explicit market_range: price is the signal price


# -- time in force and expiry ------------------------------------------------------------------------


@BOTH
async def test_expiry_in_seconds_or_iso_makes_good_till_date(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    before = datetime.now(UTC)
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": "1.09", "expiry": 3600})
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": "1.08", "tif": "gtd", "expiry": "2031-01-02T03:04:05Z"})
    relative, absolute = pending(sim)
    assert relative.time_in_force == absolute.time_in_force == "GOOD_TILL_DATE"
    expected = int(before.timestamp() * 1000) + 3_600_000
    assert expected <= relative.expiration_ms <= expected + 5_000
    assert absolute.expiration_ms == int(datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp() * 1000)


@BOTH
async def test_tif_day_expires_at_the_next_utc_midnight(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    days = {datetime.now(UTC).date()}
    await execute(http, daemon, "command=PLACE; action=BUY; instrument=EURUSD; qty=0.1; order_type=LIMIT; limit_price=1.09; tif=DAY")
    days.add(datetime.now(UTC).date())
    [order] = pending(sim)
    midnights = {int(datetime.combine(d + timedelta(days=1), datetime.min.time(), UTC).timestamp() * 1000) for d in days}
    assert order.time_in_force == "GOOD_TILL_DATE" and order.expiration_ms in midnights


@BOTH
async def test_ioc_and_fok_pending_orders_never_rest(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": "1.09", "tif": "ioc"})
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": "1.09", "tif": "fok"})
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": "1.09", "tif": "gtc"})
    [resting] = pending(sim)
    assert resting.time_in_force == "GOOD_TILL_CANCEL"
    assert [sim.order(o["broker_order_id"]).status for o in await _entries(daemon)][:2] == ["ORDER_STATUS_CANCELLED"] * 2
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "order_type": "limit", "price": "1.1002", "tif": "ioc"})
    assert len(sim.positions()) == 1  # marketable: filled at once


async def _entries(daemon: Daemon) -> list[dict[str, Any]]:
    rows = [await daemon.store.orders_for(s["id"]) for s in await daemon.store.signals()]
    return [o for group in rows for o in group if o["purpose"] == "entry"]


async def test_tif_on_a_market_order_is_ignored_with_a_note(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    answer = await execute(http, daemon, "command=PLACE; action=BUY; instrument=EURUSD; qty=0.1; order_type=MARKET; tif=DAY")
    assert answer["notes"] == ["tif day ignored: a market order fills at once or not at all"]
    assert len(sim.positions()) == 1


# -- SL/TP modes and trailing ---------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize(
    ("alert", "sl", "tp"),
    [
        ({"sl": "1.095", "tp": "1.11"}, D("-0.00510"), D("0.00990")),  # absolute: kept exactly (fill 1.10010)
        ({"sl_pips": 15, "tp_pips": "30.5"}, D("-0.00150"), D("0.00305")),
        ({"sl_pct": "0.5", "tp_pct": 1}, D("-0.00550"), D("0.01100")),  # of the entry 1.10010
    ],
)
async def test_market_sl_tp_modes(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession, alert: dict[str, Any], sl: Decimal, tp: Decimal
) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", **alert})
    [position] = sim.positions()
    assert position.entry_price == D("1.10010")
    assert (position.stop_loss - position.entry_price, position.take_profit - position.entry_price) == (sl, tp)


@BOTH
@pytest.mark.parametrize(
    ("alert", "sl", "tp"),
    [
        ({"sl": "1.115", "tp": "1.105"}, D("1.11500"), D("1.10500")),
        ({"sl_pips": 15, "tp_pips": 30}, D("1.11150"), D("1.10700")),
        ({"sl_pct": 1, "tp_pct": "0.5"}, D("1.12110"), D("1.10445")),  # 1% of 1.11 = 0.0111
    ],
)
async def test_pending_sl_tp_modes_are_measured_from_the_order_price(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession, alert: dict[str, Any], sl: Decimal, tp: Decimal
) -> None:
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "price": "1.11", **alert})
    [order] = pending(sim)
    assert (order.order_type, order.stop_loss, order.take_profit) == ("LIMIT", sl, tp)


@BOTH
async def test_trailing_stop_follows_the_price(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "sl_pips": 10, "trailing": True})
    [position] = sim.positions()
    assert position.trailing and position.stop_loss == D("1.10100")
    assert _sent(sim).trailingStopLoss
    sim.set_price("EURUSD", bid=D("1.09900"), ask=D("1.09910"))  # 10 pips behind the ask
    await eventually(lambda: sim.positions()[0].stop_loss == D("1.10010"))


# -- field errors: 400 with the field, nothing sent -------------------------------------------------------


@BOTH
@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"action": "buy", "symbol": "EURUSD", "sl": "1.2"}, "sl", "must be below the current bid 1.10000"),
        ({"action": "sell", "symbol": "EURUSD", "tp": "1.2"}, "tp", "must be below the current ask 1.10010"),
        ({"action": "buy", "symbol": "EURUSD", "price": "1.09", "sl": "1.095"}, "sl", "must be below the entry 1.09"),
        ({"action": "sell", "symbol": "EURUSD", "price": "1.11", "sl_pips": 10, "tp": "1.2"}, "tp", "must be below the entry 1.11 for a sell"),
        ({"action": "buy", "symbol": "EURUSD", "lots": -1}, "lots", "must be > 0, got -1"),
        ({"action": "buy", "symbol": "EURUSD", "price": "1.09", "expiry": "2020-01-01T00:00:00Z"}, "expiry", "must be in the future"),
        ({"action": "buy", "symbol": "EURUSD", "price": "1.09", "expiry": -5}, "expiry", "must be in the future"),
        ({"action": "buy", "symbol": "EURUSD", "expiry": 60}, "expiry", "applies to pending orders only"),
        ({"action": "hold", "symbol": "EURUSD"}, "action", "unknown action 'hold'"),
        ({"action": "buy", "symbol": "EURUSD", "order_type": "stop_limit", "price": "1.11", "limit_price": "1.10"},
         "limit_price", "must be at or above the stop price 1.11000 for a buy stop_limit"),
        ({"action": "buy", "symbol": "EURUSD", "trailing": True}, "trailing", "needs a stop loss"),
        ({"action": "buy", "symbol": "EURUSD", "max_slippage_pips": 2}, "max_slippage_pips", "needs signal_price"),
        ({"action": "buy", "symbol": "EURUSD", "price": "1.09", "tif": "gtd"}, "tif", "gtd needs an expiry"),
        ({"action": "close", "symbol": "EURUSD", "percent": 150}, "percent", "must be > 0 and <= 100"),
        ({"action": "buy", "symbol": "EURUSD", "sl_pips": "0.01"}, "sl_pips", "finer than"),
        ("60123456789,buyit,EURUSD", "action", "unknown PineConnector command 'buyit'"),
        ("command=PLCE; action=BUY; instrument=EURUSD", "command", "did you mean PLACE?"),
    ],
)
async def test_field_errors_are_400_and_nothing_is_sent(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession, body: dict[str, Any] | str, field: str, reason: str
) -> None:
    answer = await refused(http, daemon, sim, body, 400)
    assert answer["field"] == field and reason in answer["detail"], answer
    row = await daemon.store.signal(answer["signal_id"])
    assert (row["status"], row["field"]) == ("invalid", field)

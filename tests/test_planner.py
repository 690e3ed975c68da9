"""The entry planner: what exactly goes to the broker for a signal (sizes, SL/TP modes, order types,
time in force, flatten_first, netting, reverse)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pipsync_lite.ctrader.model import OrderType, Quote, Side, TimeInForce
from pipsync_lite.errors import SignalError
from pipsync_lite.planner import PlanRejected, end_of_utc_day, expected_level, plan_buy_sell, plan_entry, plan_reverse
from pipsync_lite.plans import ClosePlan, EntryPlan

from .factories import EURUSD, USDJPY, position, signal

QUOTE = Quote(bid=Decimal("1.10000"), ask=Decimal("1.10010"))
D = Decimal


def test_market_buy_with_absolute_levels_sends_relative_distances_and_keeps_targets() -> None:
    plan = plan_entry(signal(lots="0.1", sl="1.09500", tp="1.11000"), EURUSD, QUOTE, D("0.1"), "lbl")
    req = plan.request
    assert (req.order_type, req.side, req.volume) == (OrderType.MARKET, Side.BUY, 1_000_000)
    # distances from the ask (the likely fill): 1.10010 - 1.09500 = 0.00510 → 510
    assert (req.relative_stop_loss, req.relative_take_profit) == (510, 990)
    assert (req.stop_loss, req.take_profit) == (None, None)  # cTrader refuses absolute SL/TP on MARKET
    assert (plan.target_stop_loss, plan.target_take_profit) == (D("1.09500"), D("1.11000"))


def test_market_sell_with_pips_needs_no_targets() -> None:
    plan = plan_entry(signal("sell", sl_pips=20, tp_pips="35.5"), EURUSD, QUOTE, D("0.01"), "lbl")
    assert (plan.request.relative_stop_loss, plan.request.relative_take_profit) == (200, 355)
    assert plan.target_stop_loss is None and plan.target_take_profit is None


def test_pips_use_the_symbols_pip_position() -> None:
    quote = Quote(bid=D("150.000"), ask=D("150.020"))
    plan = plan_entry(signal(symbol="USDJPY", sl_pips=10), USDJPY, quote, D("0.01"), "lbl")
    assert plan.request.relative_stop_loss == 10_000  # 0.10 JPY in 1/100000


def test_percent_levels_are_measured_from_the_reference() -> None:
    plan = plan_entry(signal(sl_pct=1), EURUSD, QUOTE, D("0.01"), "lbl")
    assert plan.request.relative_stop_loss == 1100  # 1% of 1.10010 = 0.011001 → 0.01100


def test_expected_level_after_fill() -> None:
    assert expected_level(D("1.10020"), 510, Side.BUY, stop=True, digits=5) == D("1.09510")
    assert expected_level(D("1.10020"), 990, Side.BUY, stop=False, digits=5) == D("1.11010")
    assert expected_level(D("1.10000"), 200, Side.SELL, stop=True, digits=5) == D("1.10200")
    assert expected_level(D("1.10000"), None, Side.SELL, stop=True, digits=5) is None


@pytest.mark.parametrize(
    ("action", "price", "order_type"),
    [("buy", "1.09000", OrderType.LIMIT), ("buy", "1.12000", OrderType.STOP),
     ("sell", "1.12000", OrderType.LIMIT), ("sell", "1.09000", OrderType.STOP)],
)
def test_pending_type_is_inferred_from_side_and_quote(action: str, price: str, order_type: OrderType) -> None:
    plan = plan_entry(signal(action, price=price), EURUSD, QUOTE, D("0.01"), "lbl")
    assert plan.request.order_type is order_type
    entry = plan.request.limit_price or plan.request.stop_price
    assert entry == D(price)


def test_pending_order_carries_absolute_levels_from_pips() -> None:
    plan = plan_entry(signal(price="1.09000", sl_pips=10, tp="1.09500"), EURUSD, QUOTE, D("0.01"), "lbl")
    req = plan.request
    assert (req.limit_price, req.stop_loss, req.take_profit) == (D("1.09000"), D("1.08900"), D("1.09500"))
    assert req.relative_stop_loss is None


def test_prices_are_rounded_to_the_symbols_digits() -> None:
    plan = plan_entry(signal(price="1.0900049", sl="1.0890051"), EURUSD, QUOTE, D("0.01"), "lbl")
    assert (plan.request.limit_price, plan.request.stop_loss) == (D("1.09000"), D("1.08901"))


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"sl": "1.10005"}, "sl", "stop loss 1.10005 must be below the current bid 1.10000 for a buy"),
        ({"tp": "1.10000"}, "tp", "take profit 1.10000 must be above the current bid 1.10000 for a buy"),
        ({"price": "1.09", "sl": "1.095"}, "sl", "stop loss 1.09500 must be below the entry price 1.09000 for a buy"),
    ],
)
def test_levels_on_the_wrong_side_are_field_errors(fields: dict, field: str, reason: str) -> None:
    with pytest.raises(SignalError) as info:
        plan_entry(signal(**fields), EURUSD, QUOTE, D("0.01"), "lbl")
    assert (info.value.field, info.value.reason) == (field, reason)


@pytest.mark.parametrize(
    ("lots", "message"),
    [
        ("0.001", "below the minimum"),
        ("0.015", "not a multiple of the step"),
        ("1001", "above the maximum"),
    ],
)
def test_volumes_the_broker_would_refuse_are_rejected_not_rounded(lots: str, message: str) -> None:
    with pytest.raises(PlanRejected) as info:
        plan_entry(signal(), EURUSD, QUOTE, D(lots), "lbl")
    assert info.value.rule == "volume" and message in info.value.reason


def test_market_order_without_a_quote_is_rejected() -> None:
    with pytest.raises(PlanRejected) as info:
        plan_entry(signal(), EURUSD, None, D("0.01"), "lbl")
    assert info.value.rule == "no_quote"


# -- order types, time in force ------------------------------------------------------------------


NOW = datetime(2026, 11, 20, 23, 59, 30, tzinfo=UTC)


def test_tif_day_is_good_till_the_next_utc_midnight_after_now() -> None:
    plan = plan_entry(signal(price="1.09", tif="day"), EURUSD, QUOTE, D("0.01"), now=NOW)
    assert plan.request.time_in_force is TimeInForce.GTD
    assert plan.request.expiration_ms == int(datetime(2026, 11, 21, tzinfo=UTC).timestamp() * 1000)
    east = datetime(2026, 11, 21, 0, 30, tzinfo=timezone(timedelta(hours=2)))  # still the 20th in UTC
    assert end_of_utc_day(east) == datetime(2026, 11, 21, tzinfo=UTC)


def test_expiry_and_tif_of_pending_orders() -> None:
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    plan = plan_entry(signal(price="1.09", expiry=expiry), EURUSD, QUOTE, D("0.01"))
    assert (plan.request.time_in_force, plan.request.expiration_ms) == (TimeInForce.GTD, 1893456000000)
    plan = plan_entry(signal(price="1.09", tif="fok"), EURUSD, QUOTE, D("0.01"))
    assert (plan.request.time_in_force, plan.request.expiration_ms) == (TimeInForce.FOK, None)


def test_market_orders_ignore_a_resting_tif_with_a_note() -> None:
    plan = plan_entry(signal(tif="gtc"), EURUSD, QUOTE, D("0.01"))
    assert plan.request.time_in_force is None
    assert plan.notes == ("tif gtc ignored: a market order fills at once or not at all",)
    assert plan_entry(signal(tif="ioc"), EURUSD, QUOTE, D("0.01")).notes == ()


def test_max_slippage_turns_a_market_order_into_market_range() -> None:
    plan = plan_entry(signal(signal_price="1.1", max_slippage_pips=D("1.5")), EURUSD, QUOTE, D("0.01"))
    req = plan.request
    assert (req.order_type, req.base_slippage_price, req.slippage_in_points) == (OrderType.MARKET_RANGE, D("1.10000"), 15)


def test_stop_limit_limit_is_sent_as_points_beyond_the_stop() -> None:
    plan = plan_entry(signal("sell", order_type=OrderType.STOP_LIMIT, price="1.09", limit_price=D("1.0897")), EURUSD, QUOTE, D("0.01"))
    assert (plan.request.stop_price, plan.request.slippage_in_points) == (D("1.09000"), 30)
    with pytest.raises(SignalError) as info:
        plan_entry(signal("sell", order_type=OrderType.STOP_LIMIT, price="1.09", limit_price=D("1.0903")), EURUSD, QUOTE, D("0.01"))
    assert info.value.field == "limit_price"
    with pytest.raises(SignalError) as info:
        plan_entry(signal(order_type=OrderType.STOP_LIMIT, price="1.11", max_slippage_pips=D("0.05")), EURUSD, QUOTE, D("0.01"))
    assert info.value.field == "max_slippage_pips" and "finer than a point" in info.value.reason


# -- around the order: flatten_first, netting, reverse ----------------------------------------------


def test_flatten_first_closes_only_the_other_side() -> None:
    held = [position(1, "sell"), position(2, "buy"), position(3, "sell", symbol_id=3)]
    plan = plan_buy_sell(signal(), EURUSD, QUOTE, D("0.1"), held, netted=False, flatten_first=True)
    assert isinstance(plan, EntryPlan) and [c.position.position_id for c in plan.closes_first] == [1]
    plan = plan_buy_sell(signal(), EURUSD, QUOTE, D("0.1"), held, netted=False, flatten_first=False)
    assert isinstance(plan, EntryPlan) and plan.closes_first == ()


def test_netted_order_against_the_position_reduces_or_turns_it() -> None:
    held = [position(1, "buy", volume=3_000_000)]
    reduce = plan_buy_sell(signal("sell"), EURUSD, QUOTE, D("0.3"), held, netted=True, flatten_first=False)
    assert isinstance(reduce, ClosePlan) and [(c.position.position_id, c.volume) for c in reduce.closes] == [(1, 3_000_000)]
    turn = plan_buy_sell(signal("sell", sl_pips=10), EURUSD, QUOTE, D("0.5"), held, netted=True, flatten_first=False)
    assert isinstance(turn, EntryPlan) and turn.request.volume == 2_000_000 and turn.lots == D("0.5")
    assert [(c.position.position_id, c.volume) for c in turn.closes_first] == [(1, 3_000_000)]
    pending = plan_buy_sell(signal("sell", price="1.2"), EURUSD, QUOTE, D("0.1"), held, netted=True, flatten_first=False)
    assert isinstance(pending, EntryPlan) and pending.closes_first == ()  # the broker nets it when it fills


def test_reverse_opens_the_net_volume_on_the_other_side() -> None:
    held = [position(1, "buy", volume=3_000_000), position(2, "sell", volume=1_000_000), position(3, "buy", symbol_id=3)]
    plan = plan_reverse(signal("reverse"), EURUSD, QUOTE, None, held)
    assert (plan.request.side, plan.request.volume, plan.lots) == (Side.SELL, 2_000_000, D("0.2"))
    assert [c.position.position_id for c in plan.closes_first] == [1, 2]  # largest first
    plan = plan_reverse(signal("reverse"), EURUSD, QUOTE, D("1"), held)
    assert plan.request.volume == 10_000_000
    with pytest.raises(PlanRejected) as info:
        plan_reverse(signal("reverse"), EURUSD, QUOTE, None, [position(1, "buy"), position(2, "sell")])
    assert info.value.rule == "nothing_to_reverse" and "1 long, 1 short positions" in info.value.reason

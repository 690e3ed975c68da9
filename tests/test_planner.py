"""The planner: what exactly goes to the broker for a signal (sizes, SL/TP modes, order types)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipsync_lite.ctrader.model import OrderType, Quote, Side
from pipsync_lite.errors import SignalError
from pipsync_lite.exits import plan_close
from pipsync_lite.planner import PlanRejected, expected_level, plan_entry
from pipsync_lite.signal_model import Action

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


def test_close_targets_the_symbols_positions_by_side() -> None:
    positions = [position(1, "buy"), position(2, "sell"), position(3, "buy", symbol_id=3)]
    assert [c.position.position_id for c in plan_close(EURUSD, positions, Action.CLOSE).closes] == [1, 2]
    assert [c.position.position_id for c in plan_close(EURUSD, positions, Action.CLOSE_LONG).closes] == [1]
    with pytest.raises(PlanRejected) as info:
        plan_close(EURUSD, [position(3, symbol_id=3)], Action.CLOSE_SHORT)
    assert (info.value.rule, info.value.reason) == ("nothing_to_close", "no open short position on EURUSD")

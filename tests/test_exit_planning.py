"""Exit and amend planning (pure): which positions close by how much, what is cancelled, which
levels an amend resends, and when breakeven leaves a position alone."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from pipsync_lite.amends import plan_breakeven, plan_modify
from pipsync_lite.ctrader.model import OrderType, PendingOrder, Quote, Side
from pipsync_lite.errors import SignalError
from pipsync_lite.exits import plan_cancel, plan_close, plan_close_all
from pipsync_lite.planner import PlanRejected
from pipsync_lite.signal_model import Action

from .factories import EURUSD, USDJPY, position, signal

D = Decimal
QUOTE = Quote(bid=D("1.10000"), ask=D("1.10010"))
SYMBOLS = {s.symbol_id: s for s in (EURUSD, USDJPY)}


def order(order_id: int, side: str = "buy", price: str = "1.09", symbol_id: int = 1, **fields: object) -> PendingOrder:
    return PendingOrder(order_id=order_id, symbol_id=symbol_id, side=Side(side), volume=100_000,
                        order_type=OrderType.LIMIT, limit_price=D(price), **fields)  # type: ignore[arg-type]


def closes(plan: object) -> list[tuple[int, int]]:
    return [(c.position.position_id, c.volume) for c in plan.closes]  # type: ignore[attr-defined]


def test_close_targets_the_symbols_positions_by_side() -> None:
    positions = [position(1, "buy"), position(2, "sell"), position(3, "buy", symbol_id=3)]
    assert closes(plan_close(EURUSD, positions, Action.CLOSE)) == [(1, 1_000_000), (2, 1_000_000)]
    assert closes(plan_close(EURUSD, positions, Action.CLOSE_LONG)) == [(1, 1_000_000)]
    with pytest.raises(PlanRejected) as info:
        plan_close(EURUSD, [position(3, symbol_id=3)], Action.CLOSE_SHORT)
    assert (info.value.rule, info.value.reason) == ("nothing_to_close", "no open short position on EURUSD")


def test_close_lots_takes_the_largest_then_the_oldest_position_first() -> None:
    positions = [position(1, volume=1_000_000), position(2, volume=3_000_000), position(3, volume=3_000_000)]
    plan = plan_close(EURUSD, positions, Action.CLOSE, lots=D("0.35"))
    assert closes(plan) == [(2, 3_000_000), (3, 500_000)] and plan.lots == D("0.35")
    with pytest.raises(PlanRejected) as info:
        plan_close(EURUSD, positions, Action.CLOSE, lots=D("0.015"))
    assert info.value.rule == "volume" and "not a multiple of the step" in info.value.reason


def test_close_percent_rounds_each_share_down_to_the_step() -> None:
    positions = [position(1, volume=300_000), position(2, volume=100_000)]
    plan = plan_close(EURUSD, positions, Action.CLOSE, percent=D(50))
    assert closes(plan) == [(1, 100_000)]  # 0.015 → 0.01; 0.005 is below the minimum
    assert plan.notes == ("position 2 (0.01 lots EURUSD) left open: 50% of it is below the minimum of 0.01 lots",)
    assert closes(plan_close(EURUSD, positions, Action.CLOSE, percent=D(100))) == [(1, 300_000), (2, 100_000)]
    with pytest.raises(PlanRejected) as info:
        plan_close(EURUSD, [position(2, volume=100_000)], Action.CLOSE, percent=D(10))
    assert info.value.rule == "volume"


def test_close_all_with_cancel_orders_cancels_in_scope() -> None:
    positions = [position(1), position(2, symbol_id=3)]
    orders = [order(10), order(11, symbol_id=3, price="150")]
    plan = plan_close_all(None, positions, orders, SYMBOLS.get, cancel_orders=True)
    assert closes(plan) == [(1, 1_000_000), (2, 1_000_000)]
    assert [c.order.order_id for c in plan.cancels] == [10, 11]
    plan = plan_close_all(USDJPY, positions, orders, SYMBOLS.get)
    assert closes(plan) == [(2, 1_000_000)] and plan.cancels == ()


def test_cancel_by_symbol_side_and_id() -> None:
    orders = [order(10), order(11, "sell", "1.11"), order(12, symbol_id=3, price="150")]
    assert [c.order.order_id for c in plan_cancel(EURUSD, orders, SYMBOLS.get).cancels] == [10, 11]
    assert [c.order.order_id for c in plan_cancel(EURUSD, orders, SYMBOLS.get, side=Side.SELL).cancels] == [11]
    assert [c.order.order_id for c in plan_cancel(None, orders, SYMBOLS.get).cancels] == [10, 11, 12]
    assert [c.symbol.name for c in plan_cancel(None, orders, SYMBOLS.get, order_id=12).cancels] == ["USDJPY"]
    with pytest.raises(PlanRejected) as info:
        plan_cancel(EURUSD, orders, SYMBOLS.get, order_id=12)
    assert (info.value.rule, info.value.reason) == ("unknown_order", "no pending order 12 on EURUSD")


def test_modify_resends_the_level_it_keeps_and_the_trailing_flag() -> None:
    held = replace(position(1), stop_loss=D("1.09"), take_profit=D("1.12"), trailing_stop_loss=True)
    plan = plan_modify(signal("modify", tp_pips=50), EURUSD, [held], [], QUOTE, SYMBOLS.get)
    [amend] = plan.positions
    assert (amend.stop_loss, amend.take_profit, amend.trailing) == (D("1.09"), D("1.10500"), True)
    plan = plan_modify(signal("modify", trailing=False), EURUSD, [held], [], QUOTE, SYMBOLS.get)
    assert plan.positions[0].trailing is False and plan.positions[0].stop_loss == D("1.09")
    with pytest.raises(SignalError) as info:
        plan_modify(signal("modify", trailing=True), EURUSD, [position(2)], [], QUOTE, SYMBOLS.get)
    assert info.value.field == "trailing"


def test_modify_moves_an_order_and_checks_its_kept_levels() -> None:
    resting = order(10, stop_loss=D("1.085"), take_profit=D("1.095"))
    [amend] = plan_modify(signal("modify", price="1.0925"), EURUSD, [], [resting], QUOTE, SYMBOLS.get).orders
    assert (amend.limit_price, amend.stop_price, amend.stop_loss, amend.take_profit) == (D("1.09250"), None, D("1.085"), D("1.095"))
    with pytest.raises(SignalError) as info:
        plan_modify(signal("modify", price="1.096"), EURUSD, [], [resting], QUOTE, SYMBOLS.get)
    assert info.value.field == "price"
    [amend] = plan_modify(signal("modify", price="1.096", tp="1.1"), EURUSD, [], [resting], QUOTE, SYMBOLS.get).orders
    assert amend.take_profit == D("1.10000")


def test_breakeven_moves_only_what_the_broker_would_accept() -> None:
    winner = replace(position(1), entry_price=D("1.09000"))
    loser = replace(position(2), entry_price=D("1.10500"))
    tight = replace(position(3), entry_price=D("1.09000"), stop_loss=D("1.09500"))
    short = replace(position(4, "sell"), entry_price=D("1.11000"))
    plan = plan_breakeven(signal("breakeven", offset_pips=D(5)), EURUSD, [winner, loser, tight, short], QUOTE)
    assert [(a.position.position_id, a.stop_loss) for a in plan.positions] == [(1, D("1.09050")), (4, D("1.10950"))]
    assert len(plan.notes) == 2 and "not below the current bid" in plan.notes[0] and "already at or past" in plan.notes[1]
    with pytest.raises(PlanRejected) as info:
        plan_breakeven(signal("breakeven"), EURUSD, [loser], QUOTE)
    assert info.value.rule == "breakeven"

"""modify and breakeven: the new protection of positions and the new prices of pending orders (pure).

cTrader drops any SL/TP level an amend leaves out, so every plan here carries the complete
protection: the level the alert changes, and the current value of the one it keeps (and the
trailing flag, unless the alert sets it).

``modify`` picks its targets in this order:

1. ``order_id``: that pending order (new price and/or SL/TP).
2. a new ``price``: the symbol's one pending order (several → 422 ``ambiguous_order``).
3. SL/TP/trailing only: the symbol's open positions; without any, its pending orders.

SL/TP in pips or percent are measured from the position's entry price, or from the pending
order's (new) price. A new level on the wrong side of the market (positions) or of the
order's price is a field error (400), as it is for an entry.

``breakeven`` moves each position's SL to its entry + ``offset_pips`` (long) or entry −
``offset_pips`` (short). A position is left alone, with a note, when the broker would refuse
the level (it is not yet past the current price) or when its stop is already at or beyond it
(breakeven never loosens a stop); when no position can move, the alert is refused (422).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.model import OrderType, PendingOrder, Position, Quote, Side, SymbolInfo
from pipsync_lite.ctrader.units import round_price
from pipsync_lite.errors import SignalError
from pipsync_lite.exits import find_order
from pipsync_lite.planner import absolute_level, check_side
from pipsync_lite.plans import AmendPlan, OrderAmend, PlanRejected, PositionAmend
from pipsync_lite.signal_model import Signal

SymbolById = Callable[[int], SymbolInfo | None]


def plan_modify(
    signal: Signal,
    symbol: SymbolInfo | None,
    positions: Sequence[Position],
    orders: Sequence[PendingOrder],
    quote: Quote | None,
    symbol_by_id: SymbolById,
) -> AmendPlan:
    if signal.order_id is not None:
        order = find_order(orders, signal.order_id, symbol)
        owner = symbol or symbol_by_id(order.symbol_id)
        if owner is None:
            raise PlanRejected("unknown_symbol", f"symbol id {order.symbol_id} is not known to the broker session")
        return AmendPlan(orders=(_order_amend(signal, owner, order),))
    if symbol is None:  # the parser requires a symbol without order_id
        raise SignalError("symbol", "is required for action modify without order_id")
    waiting = [o for o in orders if o.symbol_id == symbol.symbol_id]
    if signal.price is not None:
        if len(waiting) != 1:
            rule = "ambiguous_order" if waiting else "nothing_to_modify"
            ids = ", ".join(str(o.order_id) for o in waiting)
            reason = (
                f"{symbol.name} has {len(waiting)} pending orders ({ids}): give order_id"
                if waiting
                else f"no pending order on {symbol.name} to give a new price"
            )
            raise PlanRejected(rule, reason)
        return AmendPlan(orders=(_order_amend(signal, symbol, waiting[0]),))
    mine = [p for p in positions if p.symbol_id == symbol.symbol_id]
    if mine:
        return AmendPlan(positions=tuple(_position_amend(signal, symbol, p, quote) for p in mine))
    if waiting:
        return AmendPlan(orders=tuple(_order_amend(signal, symbol, o) for o in waiting))
    raise PlanRejected("nothing_to_modify", f"no open position or pending order on {symbol.name}")


def _position_amend(signal: Signal, symbol: SymbolInfo, position: Position, quote: Quote | None) -> PositionAmend:
    entry = round_price(position.entry_price, symbol.digits)
    side = position.side
    sl = absolute_level(signal.sl, signal.sl_pips, signal.sl_pct, entry, side, symbol, stop=True)
    tp = absolute_level(signal.tp, signal.tp_pips, signal.tp_pct, entry, side, symbol, stop=False)
    market, name = _closing_price(side, quote)
    # The broker checks new levels against the price the position would close at now.
    check_side(side, sl, tp, market, f"the current {name}")
    stop_loss = sl if sl is not None else position.stop_loss
    trailing = position.trailing_stop_loss if signal.trailing is None else signal.trailing
    if trailing and stop_loss is None:
        raise SignalError("trailing", f"position {position.position_id} has no stop loss to trail: give sl, sl_pips or sl_pct")
    take_profit = tp if tp is not None else position.take_profit
    return PositionAmend(symbol, position, stop_loss, take_profit, trailing)


def _order_amend(signal: Signal, symbol: SymbolInfo, order: PendingOrder) -> OrderAmend:
    current = order.limit_price if order.order_type is OrderType.LIMIT else order.stop_price
    price = round_price(signal.price, symbol.digits) if signal.price is not None else current
    if price is None:
        raise PlanRejected("unknown_order", f"pending order {order.order_id} has no price to measure from")
    sl = absolute_level(signal.sl, signal.sl_pips, signal.sl_pct, price, order.side, symbol, stop=True)
    tp = absolute_level(signal.tp, signal.tp_pips, signal.tp_pct, price, order.side, symbol, stop=False)
    check_side(order.side, sl, tp, price, f"the order price of {order.order_id}")
    stop_loss = sl if sl is not None else order.stop_loss
    take_profit = tp if tp is not None else order.take_profit
    # A kept level must still suit the new price: the price is what the alert got wrong.
    check_side(order.side, stop_loss, take_profit, price, f"the new price of order {order.order_id}", ("price", "price"))
    trailing = order.trailing_stop_loss if signal.trailing is None else signal.trailing
    if trailing and stop_loss is None:
        raise SignalError("trailing", f"order {order.order_id} has no stop loss to trail: give sl, sl_pips or sl_pct")
    moves_limit = order.order_type is OrderType.LIMIT
    return OrderAmend(
        symbol,
        order,
        limit_price=price if moves_limit else order.limit_price,
        stop_price=order.stop_price if moves_limit else price,
        stop_loss=stop_loss,
        take_profit=take_profit,
        trailing=trailing,
    )


def plan_breakeven(
    signal: Signal, symbol: SymbolInfo, positions: Sequence[Position], quote: Quote | None
) -> AmendPlan:
    mine = [p for p in positions if p.symbol_id == symbol.symbol_id]
    if not mine:
        raise PlanRejected("nothing_to_modify", f"no open position on {symbol.name} to move to breakeven")
    offset = units.pips_to_distance(signal.offset_pips or 0, symbol)
    amends: list[PositionAmend] = []
    skipped: list[str] = []
    for position in mine:
        long = position.side is Side.BUY
        level = round_price(position.entry_price + offset if long else position.entry_price - offset, symbol.digits)
        market, name = _closing_price(position.side, quote)
        if level >= market if long else level <= market:
            relation = "below" if long else "above"
            skipped.append(
                f"position {position.position_id}: the broker would refuse a stop at {level}, "
                f"which is not {relation} the current {name} {market}"
            )
        elif position.stop_loss is not None and (position.stop_loss >= level if long else position.stop_loss <= level):
            skipped.append(f"position {position.position_id}: its stop {position.stop_loss} is already at or past {level}")
        else:
            amends.append(PositionAmend(symbol, position, level, position.take_profit, position.trailing_stop_loss))
    if not amends:
        raise PlanRejected("breakeven", "; ".join(skipped))
    return AmendPlan(positions=tuple(amends), notes=tuple(f"not moved: {s}" for s in skipped))


def _closing_price(side: Side, quote: Quote | None) -> tuple[Decimal, str]:
    """The price a position of ``side`` closes at now: the bid for a long, the ask for a short."""
    price, name = (quote.bid if quote else None, "bid") if side is Side.BUY else (quote.ask if quote else None, "ask")
    if price is None:
        raise PlanRejected("no_quote", f"no {name} price from the broker yet")
    return price, name

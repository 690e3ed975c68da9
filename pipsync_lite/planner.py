"""Signal + symbol + quote → exactly what to send (pure: no I/O, no clock).

Market orders carry *relative* SL/TP (cTrader refuses absolute levels on them); when the
alert gave absolute prices, the plan also keeps them as targets so that the engine can amend
the position to exactly those levels if the fill moved away from the quote. Pending orders
carry absolute levels. Prices are rounded to the symbol's digits (nearest); volumes are
never rounded: an off-step size is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.units import round_price
from pipsync_lite.ctrader.model import (
    OrderRequest,
    OrderType,
    Position,
    Quote,
    Side,
    SymbolInfo,
)
from pipsync_lite.errors import SignalError
from pipsync_lite.signal_model import Action, Signal


class PlanRejected(Exception):
    """The signal is well formed but cannot be carried out here (HTTP 422)."""

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(f"{rule}: {reason}")


@dataclass(frozen=True, slots=True)
class EntryPlan:
    symbol: SymbolInfo
    request: OrderRequest
    lots: Decimal
    target_stop_loss: Decimal | None = None  # market orders: absolute levels to enforce
    target_take_profit: Decimal | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClosePlan:
    symbol: SymbolInfo
    closes: tuple[tuple[Position, int], ...]  # (position, volume to close)
    notes: tuple[str, ...] = field(default=())


Plan = EntryPlan | ClosePlan


def lots_to_volume(lots: Decimal, symbol: SymbolInfo) -> int:
    """Lots → protocol volume; a size the broker would refuse is refused here, never rounded."""
    try:
        return units.lots_to_volume(lots, symbol)
    except ValueError as exc:
        raise PlanRejected("volume", str(exc)) from None


def infer_order_type(side: Side, price: Decimal, quote: Quote) -> OrderType:
    """A buy below the ask waits for the price to come down (limit), above it is a breakout (stop)."""
    if side is Side.BUY:
        ask = _side(quote.ask, "ask")
        return OrderType.LIMIT if price <= ask else OrderType.STOP
    bid = _side(quote.bid, "bid")
    return OrderType.LIMIT if price >= bid else OrderType.STOP


def _side(value: Decimal | None, name: str) -> Decimal:
    if value is None:
        raise PlanRejected("no_quote", f"no {name} price from the broker yet")
    return value


def plan_entry(
    signal: Signal, symbol: SymbolInfo, quote: Quote | None, lots: Decimal, label: str
) -> EntryPlan:
    side = Side.BUY if signal.action is Action.BUY else Side.SELL
    volume = lots_to_volume(lots, symbol)
    if signal.trailing and signal.sl is None and signal.sl_pips is None and signal.sl_pct is None:
        raise SignalError("trailing", "a trailing stop needs a stop loss (sl, sl_pips or sl_pct)")
    order_type = signal.order_type
    entry = round_price(signal.price, symbol.digits) if signal.price else None
    if order_type is None:
        order_type = OrderType.MARKET if entry is None else infer_order_type(side, entry, quote or Quote(None, None))
    if order_type is OrderType.MARKET:
        return _market(signal, symbol, quote, side, volume, lots, label)
    if entry is None:
        raise SignalError("price", f"a {order_type} order needs a price")
    return _pending(signal, symbol, side, order_type, entry, volume, lots, label)


def _market(
    signal: Signal, symbol: SymbolInfo, quote: Quote | None, side: Side, volume: int, lots: Decimal, label: str
) -> EntryPlan:
    quote = quote or Quote(None, None)
    # The price the order will most likely fill at, and the price its stops are checked against.
    reference = _side(quote.ask if side is Side.BUY else quote.bid, "ask" if side is Side.BUY else "bid")
    trigger = _side(quote.bid if side is Side.BUY else quote.ask, "bid" if side is Side.BUY else "ask")
    sl, sl_rel = _level(signal.sl, signal.sl_pips, signal.sl_pct, reference, side, symbol, stop=True)
    tp, tp_rel = _level(signal.tp, signal.tp_pips, signal.tp_pct, reference, side, symbol, stop=False)
    _check_side(side, sl, tp, trigger, "the current " + ("bid" if side is Side.BUY else "ask"))
    request = OrderRequest(
        symbol_id=symbol.symbol_id,
        side=side,
        volume=volume,
        order_type=OrderType.MARKET,
        relative_stop_loss=sl_rel,
        relative_take_profit=tp_rel,
        trailing_stop_loss=signal.trailing,
        label=label,
        client_order_id=label,
        comment=(signal.comment or "")[:512],
    )
    return EntryPlan(symbol, request, lots, target_stop_loss=sl, target_take_profit=tp)


def _pending(
    signal: Signal,
    symbol: SymbolInfo,
    side: Side,
    order_type: OrderType,
    entry: Decimal,
    volume: int,
    lots: Decimal,
    label: str,
) -> EntryPlan:
    sl, sl_rel = _level(signal.sl, signal.sl_pips, signal.sl_pct, entry, side, symbol, stop=True)
    tp, tp_rel = _level(signal.tp, signal.tp_pips, signal.tp_pct, entry, side, symbol, stop=False)
    if sl is None and sl_rel is not None:
        sl = _apply(entry, sl_rel, side, stop=True, digits=symbol.digits)
    if tp is None and tp_rel is not None:
        tp = _apply(entry, tp_rel, side, stop=False, digits=symbol.digits)
    _check_side(side, sl, tp, entry, "the entry price")
    request = OrderRequest(
        symbol_id=symbol.symbol_id,
        side=side,
        volume=volume,
        order_type=order_type,
        limit_price=entry if order_type is OrderType.LIMIT else None,
        stop_price=entry if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        stop_loss=sl,
        take_profit=tp,
        trailing_stop_loss=signal.trailing,
        label=label,
        client_order_id=label,
        comment=(signal.comment or "")[:512],
    )
    return EntryPlan(symbol, request, lots)


def _level(
    absolute: Decimal | None,
    pips: Decimal | None,
    pct: Decimal | None,
    reference: Decimal,
    side: Side,
    symbol: SymbolInfo,
    *,
    stop: bool,
) -> tuple[Decimal | None, int | None]:
    """(absolute level to enforce, relative distance to send) for one of SL / TP."""
    name = "sl" if stop else "tp"
    if absolute is not None:
        level = round_price(absolute, symbol.digits)
        return level, _positive(units.relative_distance(reference, level), name)
    if pips is not None:
        try:
            return None, _positive(units.relative_from_pips(pips, symbol), f"{name}_pips")
        except ValueError as exc:
            raise SignalError(f"{name}_pips", str(exc), pips) from None
    if pct is not None:
        distance = round_price(reference * pct / 100, symbol.digits)
        return None, _positive(units.price_to_spot(distance), f"{name}_pct")
    return None, None


def _positive(relative: int, field_name: str) -> int:
    if relative <= 0:
        raise SignalError(field_name, "the distance from the entry rounds to zero")
    return relative


def _apply(entry: Decimal, relative: int, side: Side, *, stop: bool, digits: int) -> Decimal:
    distance = units.relative_to_distance(relative)
    below = (side is Side.BUY) == stop  # a buy's stop and a sell's target sit below the entry
    return round_price(entry - distance if below else entry + distance, digits)


def _check_side(side: Side, sl: Decimal | None, tp: Decimal | None, ref: Decimal, what: str) -> None:
    if side is Side.BUY:
        if sl is not None and sl >= ref:
            raise SignalError("sl", f"stop loss {sl} must be below {what} {ref} for a buy")
        if tp is not None and tp <= ref:
            raise SignalError("tp", f"take profit {tp} must be above {what} {ref} for a buy")
    else:
        if sl is not None and sl <= ref:
            raise SignalError("sl", f"stop loss {sl} must be above {what} {ref} for a sell")
        if tp is not None and tp >= ref:
            raise SignalError("tp", f"take profit {tp} must be below {what} {ref} for a sell")


def expected_level(fill: Decimal, relative: int | None, side: Side, *, stop: bool, digits: int) -> Decimal | None:
    """Where the broker puts a relative SL/TP after a fill at ``fill``."""
    if relative is None:
        return None
    return _apply(fill, relative, side, stop=stop, digits=digits)


def plan_close(symbol: SymbolInfo, positions: list[Position], action: Action) -> ClosePlan:
    wanted = {
        Action.CLOSE: (Side.BUY, Side.SELL),
        Action.CLOSE_LONG: (Side.BUY,),
        Action.CLOSE_SHORT: (Side.SELL,),
    }[action]
    mine = [p for p in positions if p.symbol_id == symbol.symbol_id and p.side in wanted]
    if not mine:
        raise PlanRejected("nothing_to_close", f"no open {_scope(action)}position on {symbol.name}")
    return ClosePlan(symbol, tuple((p, p.volume) for p in mine))


def _scope(action: Action) -> str:
    return {Action.CLOSE_LONG: "long ", Action.CLOSE_SHORT: "short "}.get(action, "")

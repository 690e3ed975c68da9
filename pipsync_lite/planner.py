"""Entries: signal + symbol + quote → exactly the order to send (pure: no I/O, no clock).

Market orders carry *relative* SL/TP (cTrader refuses absolute levels on them); when the
alert gave absolute prices, the plan also keeps them as targets so that the executor can
amend the position to exactly those levels if the fill moved away from the quote. Pending
orders carry absolute levels. Prices are rounded to the symbol's digits (nearest); volumes
are never rounded: an off-step size is refused.

Order types: ``order_type`` wins; else a ``price`` makes a limit or a stop (from the side
and the quote), and no price a market order. A market order with ``max_slippage_pips``
becomes MARKET_RANGE around ``signal_price``. A stop_limit's limit is ``limit_price``, or
``max_slippage_pips`` beyond its stop. Time in force applies to pending orders: ``expiry`` or
``tif: gtd`` → GOOD_TILL_DATE, ``tif: day`` → GOOD_TILL_DATE at the next 00:00 UTC after
``now``; on a market order (which fills at once or not at all) ``tif`` is ignored with a note.

Around the order itself (:func:`plan_buy_sell`, :func:`plan_reverse`): ``flatten_first``
closes the positions on the other side first; on a netted account a market order against
the position reduces it (a close of that volume) or turns it (close it, then open the rest);
``reverse`` closes every position of the symbol, then opens the other side of their net.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.model import (
    OrderRequest,
    OrderType,
    Position,
    Quote,
    Side,
    SymbolInfo,
    TimeInForce,
)
from pipsync_lite.ctrader.units import round_price
from pipsync_lite.errors import SignalError
from pipsync_lite.plans import Close, ClosePlan, EntryPlan, PlanRejected
from pipsync_lite.signal_model import Action, Signal

__all__ = [
    "PlanRejected",
    "EntryPlan",
    "absolute_level",
    "check_side",
    "expected_level",
    "infer_order_type",
    "lots_to_volume",
    "plan_buy_sell",
    "plan_entry",
    "plan_reverse",
]


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


# --- one order ----------------------------------------------------------------------------------


def plan_entry(
    signal: Signal,
    symbol: SymbolInfo,
    quote: Quote | None,
    lots: Decimal,
    label: str = "",
    *,
    now: datetime | None = None,
) -> EntryPlan:
    """The order a buy/sell signal sends. ``now`` (UTC) is needed for ``tif: day`` only."""
    side = Side.BUY if signal.action is Action.BUY else Side.SELL
    volume = lots_to_volume(lots, symbol)
    if signal.trailing and signal.sl is None and signal.sl_pips is None and signal.sl_pct is None:
        raise SignalError("trailing", "a trailing stop needs a stop loss (sl, sl_pips or sl_pct)")
    order_type = signal.order_type
    entry = round_price(signal.price, symbol.digits) if signal.price else None
    if order_type is None:
        order_type = OrderType.MARKET if entry is None else infer_order_type(side, entry, quote or Quote(None, None))
    if order_type is OrderType.MARKET and signal.max_slippage_pips is not None:
        order_type = OrderType.MARKET_RANGE  # a market order that refuses to fill too far away
    if not order_type.is_pending:
        return _market(signal, symbol, quote, side, order_type, volume, lots, label)
    if entry is None:
        raise SignalError("price", f"a {order_type} order needs a price")
    return _pending(signal, symbol, side, order_type, entry, volume, lots, label, now)


def _market(
    signal: Signal,
    symbol: SymbolInfo,
    quote: Quote | None,
    side: Side,
    order_type: OrderType,
    volume: int,
    lots: Decimal,
    label: str,
) -> EntryPlan:
    quote = quote or Quote(None, None)
    # The price the order will most likely fill at, and the price its stops are checked against.
    reference = _side(quote.ask if side is Side.BUY else quote.bid, "ask" if side is Side.BUY else "bid")
    trigger = _side(quote.bid if side is Side.BUY else quote.ask, "bid" if side is Side.BUY else "ask")
    sl, sl_rel = _level(signal.sl, signal.sl_pips, signal.sl_pct, reference, side, symbol, stop=True)
    tp, tp_rel = _level(signal.tp, signal.tp_pips, signal.tp_pct, reference, side, symbol, stop=False)
    check_side(side, sl, tp, trigger, "the current " + ("bid" if side is Side.BUY else "ask"))
    base, slippage = None, None
    if order_type is OrderType.MARKET_RANGE:
        if signal.signal_price is None or signal.max_slippage_pips is None:
            # The parser requires both; a direct caller may not have.
            raise SignalError("max_slippage_pips", "a market_range order needs max_slippage_pips and signal_price")
        base = round_price(signal.signal_price, symbol.digits)
        slippage = _points(signal.max_slippage_pips, symbol, "max_slippage_pips")
    notes = ()
    if signal.tif in ("gtc", "day"):
        notes = (f"tif {signal.tif} ignored: a market order fills at once or not at all",)
    request = OrderRequest(
        symbol_id=symbol.symbol_id,
        side=side,
        volume=volume,
        order_type=order_type,
        relative_stop_loss=sl_rel,
        relative_take_profit=tp_rel,
        trailing_stop_loss=bool(signal.trailing),
        base_slippage_price=base,
        slippage_in_points=slippage,
        label=label,
        client_order_id=label,
        comment=(signal.comment or "")[:512],
    )
    return EntryPlan(symbol, request, lots, target_stop_loss=sl, target_take_profit=tp, notes=notes)


def _pending(
    signal: Signal,
    symbol: SymbolInfo,
    side: Side,
    order_type: OrderType,
    entry: Decimal,
    volume: int,
    lots: Decimal,
    label: str,
    now: datetime | None,
) -> EntryPlan:
    sl = absolute_level(signal.sl, signal.sl_pips, signal.sl_pct, entry, side, symbol, stop=True)
    tp = absolute_level(signal.tp, signal.tp_pips, signal.tp_pct, entry, side, symbol, stop=False)
    check_side(side, sl, tp, entry, "the entry price")
    slippage = _stop_limit_slippage(signal, symbol, side, entry) if order_type is OrderType.STOP_LIMIT else None
    time_in_force, expiration_ms = _time_in_force(signal, now)
    request = OrderRequest(
        symbol_id=symbol.symbol_id,
        side=side,
        volume=volume,
        order_type=order_type,
        limit_price=entry if order_type is OrderType.LIMIT else None,
        stop_price=entry if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        time_in_force=time_in_force,
        expiration_ms=expiration_ms,
        stop_loss=sl,
        take_profit=tp,
        trailing_stop_loss=bool(signal.trailing),
        slippage_in_points=slippage,
        label=label,
        client_order_id=label,
        comment=(signal.comment or "")[:512],
    )
    return EntryPlan(symbol, request, lots)


def _stop_limit_slippage(signal: Signal, symbol: SymbolInfo, side: Side, stop: Decimal) -> int:
    """A stop_limit's limit as cTrader takes it: the distance beyond the stop, in points."""
    if signal.limit_price is None:
        if signal.max_slippage_pips is None:
            raise SignalError("limit_price", "is required for a stop_limit order (or max_slippage_pips)")
        return _points(signal.max_slippage_pips, symbol, "max_slippage_pips")
    limit = round_price(signal.limit_price, symbol.digits)
    if side is Side.BUY and limit < stop:
        raise SignalError("limit_price", f"must be at or above the stop price {stop} for a buy stop_limit, got {limit}")
    if side is Side.SELL and limit > stop:
        raise SignalError("limit_price", f"must be at or below the stop price {stop} for a sell stop_limit, got {limit}")
    return units.distance_to_points(abs(limit - stop), symbol)


def _points(pips: Decimal, symbol: SymbolInfo, field_name: str) -> int:
    try:
        return units.distance_to_points(units.pips_to_distance(pips, symbol), symbol)
    except ValueError as exc:
        raise SignalError(field_name, str(exc), pips) from None


def _time_in_force(signal: Signal, now: datetime | None) -> tuple[TimeInForce | None, int | None]:
    """(timeInForce, expirationTimestamp ms) of a pending order."""
    if signal.tif == "day":
        if now is None:
            raise ValueError("tif day needs the current time")
        return TimeInForce.GTD, _ms(end_of_utc_day(now))
    if signal.expiry is not None:
        return TimeInForce.GTD, _ms(signal.expiry)
    return (TimeInForce(signal.tif) if signal.tif else None), None


def end_of_utc_day(now: datetime) -> datetime:
    """The next 00:00 UTC after ``now``: when a DAY order expires."""
    today = now.astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- SL/TP levels -------------------------------------------------------------------------------


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


def absolute_level(
    absolute: Decimal | None,
    pips: Decimal | None,
    pct: Decimal | None,
    reference: Decimal,
    side: Side,
    symbol: SymbolInfo,
    *,
    stop: bool,
) -> Decimal | None:
    """One of SL / TP as a price: as given, or ``pips``/``pct`` away from ``reference``."""
    level, relative = _level(absolute, pips, pct, reference, side, symbol, stop=stop)
    if level is None and relative is not None:
        level = _apply(reference, relative, side, stop=stop, digits=symbol.digits)
    return level


def _positive(relative: int, field_name: str) -> int:
    if relative <= 0:
        raise SignalError(field_name, "the distance from the entry rounds to zero")
    return relative


def _apply(entry: Decimal, relative: int, side: Side, *, stop: bool, digits: int) -> Decimal:
    distance = units.relative_to_distance(relative)
    below = (side is Side.BUY) == stop  # a buy's stop and a sell's target sit below the entry
    return round_price(entry - distance if below else entry + distance, digits)


def check_side(
    side: Side,
    sl: Decimal | None,
    tp: Decimal | None,
    ref: Decimal,
    what: str,
    fields: tuple[str, str] = ("sl", "tp"),
) -> None:
    """SL on the losing side of ``ref``, TP on the winning side; else a SignalError naming the field."""
    sl_field, tp_field = fields
    if side is Side.BUY:
        if sl is not None and sl >= ref:
            raise SignalError(sl_field, f"stop loss {sl} must be below {what} {ref} for a buy")
        if tp is not None and tp <= ref:
            raise SignalError(tp_field, f"take profit {tp} must be above {what} {ref} for a buy")
    else:
        if sl is not None and sl <= ref:
            raise SignalError(sl_field, f"stop loss {sl} must be above {what} {ref} for a sell")
        if tp is not None and tp >= ref:
            raise SignalError(tp_field, f"take profit {tp} must be below {what} {ref} for a sell")


def expected_level(fill: Decimal, relative: int | None, side: Side, *, stop: bool, digits: int) -> Decimal | None:
    """Where the broker puts a relative SL/TP after a fill at ``fill``."""
    if relative is None:
        return None
    return _apply(fill, relative, side, stop=stop, digits=digits)


# --- the order in the context of the symbol's positions -----------------------------------------


def plan_buy_sell(
    signal: Signal,
    symbol: SymbolInfo,
    quote: Quote | None,
    lots: Decimal,
    positions: Sequence[Position],
    *,
    netted: bool,
    flatten_first: bool,
    now: datetime | None = None,
) -> EntryPlan | ClosePlan:
    """A buy/sell with ``flatten_first`` and a netted account's netting applied."""
    entry = plan_entry(signal, symbol, quote, lots, now=now)
    side = entry.request.side
    against = [p for p in positions if p.symbol_id == symbol.symbol_id and p.side is not side]
    if not against:
        return entry
    if flatten_first:
        closes = tuple(Close(symbol, p, p.volume) for p in against)
        note = f"flatten_first: closing the {_held(against)} {_direction(side.opposite)} on {symbol.name} first"
        return dataclasses.replace(entry, closes_first=closes, notes=(*entry.notes, note))
    if netted and not entry.request.order_type.is_pending:
        return _netted(signal, entry, against[0])
    return entry


def _netted(signal: Signal, entry: EntryPlan, held: Position) -> EntryPlan | ClosePlan:
    """A netted account keeps one position per symbol: an opposite order reduces or turns it."""
    symbol, wanted = entry.symbol, entry.request.volume
    side = entry.request.side
    if wanted <= held.volume:
        notes = [
            f"netted account: the {side} reduces the {_direction(held.side)} position "
            f"by {entry.lots} of {units.volume_to_lots(held.volume, symbol)} lots"
        ]
        if _has_levels(signal):
            notes.append("sl/tp not applied: the order only reduces the existing position")
        return ClosePlan((Close(symbol, held, wanted),), notes=(*entry.notes, *notes))
    rest = wanted - held.volume
    try:
        units.check_volume(rest, symbol)
    except ValueError as exc:
        raise PlanRejected("volume", f"netted account: the part beyond the open position: {exc}") from None
    note = (
        f"netted account: the {side} closes the {_direction(held.side)} position of "
        f"{units.volume_to_lots(held.volume, symbol)} lots, then opens {units.volume_to_lots(rest, symbol)} lots"
    )
    request = dataclasses.replace(entry.request, volume=rest)
    return dataclasses.replace(
        entry, request=request, closes_first=(Close(symbol, held, held.volume),), notes=(*entry.notes, note)
    )


def plan_reverse(
    signal: Signal,
    symbol: SymbolInfo,
    quote: Quote | None,
    lots: Decimal | None,
    positions: Sequence[Position],
    *,
    now: datetime | None = None,
) -> EntryPlan:
    """Close every position of the symbol, then open the other side of their net direction.

    The new size is ``lots`` when given, else the net volume closed. A symbol whose
    positions net to zero (hedged: long 1 and short 1) has no direction to reverse.
    """
    mine = [p for p in positions if p.symbol_id == symbol.symbol_id]
    if not mine:
        raise PlanRejected("nothing_to_reverse", f"no open position on {symbol.name} to reverse")
    net = sum(p.volume if p.side is Side.BUY else -p.volume for p in mine)
    if net == 0:
        raise PlanRejected(
            "nothing_to_reverse",
            f"the positions on {symbol.name} ({_held(mine)}) net to zero: no direction to reverse",
        )
    side = Side.SELL if net > 0 else Side.BUY
    size = lots if lots is not None else units.volume_to_lots(abs(net), symbol)
    opposite = dataclasses.replace(signal, action=Action.BUY if side is Side.BUY else Action.SELL)
    entry = plan_entry(opposite, symbol, quote, size, now=now)
    closes = tuple(Close(symbol, p, p.volume) for p in sorted(mine, key=_largest_first))
    note = f"reverse: closing {_held(mine)} on {symbol.name}, then opening a {side} of {size} lots"
    return dataclasses.replace(entry, closes_first=closes, notes=(*entry.notes, note))


def _largest_first(position: Position) -> tuple[int, int, int]:
    return (-position.volume, position.open_timestamp_ms, position.position_id)


def _has_levels(signal: Signal) -> bool:
    return any(v is not None for v in (signal.sl, signal.tp, signal.sl_pips, signal.tp_pips, signal.sl_pct, signal.tp_pct))


def _direction(side: Side) -> str:
    return "long" if side is Side.BUY else "short"


def _held(positions: Sequence[Position]) -> str:
    """'1 long position' / '2 long, 1 short positions', for notes and reasons."""
    longs = sum(1 for p in positions if p.side is Side.BUY)
    shorts = len(positions) - longs
    parts = [f"{n} {word}" for n, word in ((longs, "long"), (shorts, "short")) if n]
    return f"{', '.join(parts)} position{'s' if len(positions) > 1 else ''}"

"""Exits: which positions to close, by how much, and which pending orders to cancel (pure).

- ``close`` / ``close_long`` / ``close_short``: every (long / short) position of the symbol;
  with ``lots``, that many lots in all, taken from the largest position first (then the
  oldest); with ``percent``, that share of each position.
- ``close_all``: every position of the account, or of the symbol when one is named; with
  ``cancel_orders`` (CrossTrade's FLATTEN / FLATTENEVERYTHING) the pending orders in the
  same scope are cancelled first, so none fills while the positions are being closed.
- ``cancel`` / ``cancel_all``: the pending orders of the symbol (``side``: only buys or
  sells), of the account for ``cancel_all`` without a symbol, or the one ``order_id``.

A share of a position is rounded *down* to the symbol's volume step (an exit never closes
more than asked); a position whose share rounds below the minimum volume is left open, with
a note. Asking to close more lots than are open closes everything, with a note: an exit
must not fail on a number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.model import PendingOrder, Position, Side, SymbolInfo
from pipsync_lite.planner import lots_to_volume
from pipsync_lite.plans import Cancel, Close, ClosePlan, PlanRejected
from pipsync_lite.signal_model import Action

SymbolById = Callable[[int], SymbolInfo | None]

_SIDES: dict[Action, tuple[Side, ...]] = {
    Action.CLOSE: (Side.BUY, Side.SELL),
    Action.CLOSE_LONG: (Side.BUY,),
    Action.CLOSE_SHORT: (Side.SELL,),
}


def plan_close(
    symbol: SymbolInfo,
    positions: Sequence[Position],
    action: Action,
    *,
    lots: Decimal | None = None,
    percent: Decimal | None = None,
) -> ClosePlan:
    """close / close_long / close_short on one symbol, in full or in part."""
    mine = [p for p in positions if p.symbol_id == symbol.symbol_id and p.side in _SIDES[action]]
    if not mine:
        raise PlanRejected("nothing_to_close", f"no open {_scope(action)}position on {symbol.name}")
    if lots is not None:
        closes, notes = _by_lots(symbol, mine, lots)
    elif percent is not None:
        closes, notes = _by_percent(lambda _: symbol, mine, percent)
    else:
        closes, notes = tuple(Close(symbol, p, p.volume) for p in mine), ()
    return ClosePlan(closes, notes=notes)


def plan_close_all(
    symbol: SymbolInfo | None,
    positions: Sequence[Position],
    orders: Sequence[PendingOrder],
    symbol_by_id: SymbolById,
    *,
    percent: Decimal | None = None,
    cancel_orders: bool = False,
) -> ClosePlan:
    """close_all: the account's positions (the symbol's when given); FLATTEN cancels orders too."""
    mine = [p for p in positions if symbol is None or p.symbol_id == symbol.symbol_id]
    waiting = [o for o in orders if symbol is None or o.symbol_id == symbol.symbol_id] if cancel_orders else []
    where = f"on {symbol.name}" if symbol is not None else "on the account"
    if not mine and not waiting:
        what = "open position or pending order" if cancel_orders else "open position"
        raise PlanRejected("nothing_to_close", f"no {what} {where}")
    lookup = _lookup(symbol_by_id)
    cancels = tuple(Cancel(lookup(o.symbol_id), o) for o in waiting)
    if percent is not None and mine:
        closes, notes = _by_percent(lookup, mine, percent)
    else:
        closes, notes = tuple(Close(lookup(p.symbol_id), p, p.volume) for p in mine), ()
    return ClosePlan(closes, cancels, notes)


def plan_cancel(
    symbol: SymbolInfo | None,
    orders: Sequence[PendingOrder],
    symbol_by_id: SymbolById,
    *,
    order_id: int | None = None,
    side: Side | None = None,
) -> ClosePlan:
    """cancel / cancel_all: one order by id, or the pending orders in scope."""
    lookup = _lookup(symbol_by_id)
    if order_id is not None:
        order = find_order(orders, order_id, symbol)
        return ClosePlan((), (Cancel(lookup(order.symbol_id), order),))
    mine = [
        o for o in orders
        if (symbol is None or o.symbol_id == symbol.symbol_id) and (side is None or o.side is side)
    ]  # fmt: skip
    if not mine:
        which = f"{side} " if side is not None else ""
        where = f"on {symbol.name}" if symbol is not None else "on the account"
        raise PlanRejected("nothing_to_cancel", f"no pending {which}order {where}")
    return ClosePlan((), tuple(Cancel(lookup(o.symbol_id), o) for o in mine))


def find_order(orders: Sequence[PendingOrder], order_id: int, symbol: SymbolInfo | None) -> PendingOrder:
    """The pending order ``order_id`` (of ``symbol`` when the alert named one), else 422."""
    for order in orders:
        if order.order_id == order_id and (symbol is None or order.symbol_id == symbol.symbol_id):
            return order
    where = f" on {symbol.name}" if symbol is not None else ""
    raise PlanRejected("unknown_order", f"no pending order {order_id}{where}")


# --- shares of positions --------------------------------------------------------------------------


def _by_lots(
    symbol: SymbolInfo, mine: list[Position], lots: Decimal
) -> tuple[tuple[Close, ...], tuple[str, ...]]:
    """``lots`` in all, largest position first (then oldest): fewest positions touched."""
    left = lots_to_volume(lots, symbol)
    closes: list[Close] = []
    for position in sorted(mine, key=lambda p: (-p.volume, p.open_timestamp_ms, p.position_id)):
        if left == 0:
            break
        part = min(left, position.volume)
        if part < position.volume:
            _check_part(part, position, symbol)
        closes.append(Close(symbol, position, part))
        left -= part
    notes: tuple[str, ...] = ()
    if left:
        open_lots = units.volume_to_lots(sum(p.volume for p in mine), symbol)
        notes = (f"asked to close {lots} lots, but {open_lots} lots are open on {symbol.name}: closing all of them",)
    return tuple(closes), notes


def _by_percent(
    lookup: Callable[[int], SymbolInfo], mine: list[Position], percent: Decimal
) -> tuple[tuple[Close, ...], tuple[str, ...]]:
    closes: list[Close] = []
    notes: list[str] = []
    for position in mine:
        symbol = lookup(position.symbol_id)
        step = symbol.step_volume if symbol.step_volume > 0 else 1
        share = int(position.volume * percent / 100) // step * step  # rounded down to the step
        if share >= position.volume:
            closes.append(Close(symbol, position, position.volume))
        elif share > 0 and share >= symbol.min_volume:
            closes.append(Close(symbol, position, share))
        else:
            held = units.volume_to_lots(position.volume, symbol)
            notes.append(
                f"position {position.position_id} ({held} lots {symbol.name}) left open: {percent}% of it "
                f"is below the minimum of {units.volume_to_lots(symbol.min_volume, symbol)} lots"
            )
    if not closes:
        raise PlanRejected("volume", "; ".join(notes))
    return tuple(closes), tuple(notes)


def _check_part(part: int, position: Position, symbol: SymbolInfo) -> None:
    try:
        units.check_volume(part, symbol)
    except ValueError as exc:
        raise PlanRejected("volume", f"partial close of position {position.position_id}: {exc}") from None


def _lookup(symbol_by_id: SymbolById) -> Callable[[int], SymbolInfo]:
    def lookup(symbol_id: int) -> SymbolInfo:
        symbol = symbol_by_id(symbol_id)
        if symbol is None:  # the client loads every symbol of the account before it is ready
            raise PlanRejected("unknown_symbol", f"symbol id {symbol_id} is not known to the broker session")
        return symbol

    return lookup


def _scope(action: Action) -> str:
    return {Action.CLOSE_LONG: "long ", Action.CLOSE_SHORT: "short "}.get(action, "")

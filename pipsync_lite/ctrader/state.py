"""What the client knows about the account: symbols, balance, positions, orders, quotes.

Rebuilt from the server after every (re)connect (symbols, TraderRes, ReconcileRes) and kept
current by execution and spot events. Protective STOP_LOSS_TAKE_PROFIT orders and closing
orders never appear among the user's pending orders; their levels show on the position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from google.protobuf.message import Message

from pipsync_lite.ctrader import translate, units
from pipsync_lite.ctrader.model import (
    AccountInfo,
    AccountSnapshot,
    Execution,
    PendingOrder,
    Position,
    Quote,
    SymbolInfo,
)


class BrokerState:
    """Mutable account state; read through copies (the values themselves are frozen)."""

    def __init__(self) -> None:
        self.symbols: dict[int, SymbolInfo] = {}
        self._by_name: dict[str, SymbolInfo] = {}
        self._by_folded_name: dict[str, SymbolInfo] = {}
        self.account: AccountInfo | None = None
        self.positions: dict[int, Position] = {}
        self.orders: dict[int, PendingOrder] = {}
        self.quotes: dict[int, Quote] = {}

    # --- reference data -------------------------------------------------------------------

    def set_symbols(self, symbols: Iterable[SymbolInfo]) -> None:
        self.symbols = {s.symbol_id: s for s in symbols}
        self._by_name = {s.name: s for s in self.symbols.values()}
        self._by_folded_name = {s.name.casefold(): s for s in self.symbols.values()}

    def symbol(self, name: str) -> SymbolInfo | None:
        """The symbol called ``name`` (exact match first, then case-insensitive)."""
        return self._by_name.get(name) or self._by_folded_name.get(name.casefold())

    def digits_of(self, symbol_id: int) -> int:
        symbol = self.symbols.get(symbol_id)
        return symbol.digits if symbol is not None else translate.DEFAULT_DIGITS

    # --- snapshots from the server --------------------------------------------------------

    def apply_reconcile(self, res: Message) -> None:
        """Replace positions and pending orders with a ``ProtoOAReconcileRes``."""
        self.positions = {
            p.positionId: translate.position(p, self.digits_of)
            for p in res.position
            if translate.is_open_position(p)
        }
        self.orders = {
            o.orderId: translate.pending_order(o, self.digits_of)
            for o in res.order
            if translate.is_user_pending(o)
        }

    # --- events ---------------------------------------------------------------------------

    def apply_execution(self, event: Message) -> Execution:
        """Update positions, orders and balance from a ``ProtoOAExecutionEvent``; translate it."""
        if event.HasField("position"):
            p = event.position
            if translate.is_open_position(p):
                self.positions[p.positionId] = translate.position(p, self.digits_of)
            elif p.positionStatus != translate.M.POSITION_STATUS_CREATED:
                self.positions.pop(p.positionId, None)
        if event.HasField("order"):
            o = event.order
            if translate.is_user_pending(o):
                self.orders[o.orderId] = translate.pending_order(o, self.digits_of)
            else:
                self.orders.pop(o.orderId, None)
        if event.HasField("deal") and event.deal.HasField("closePositionDetail"):
            detail = event.deal.closePositionDetail
            digits = detail.moneyDigits if detail.HasField("moneyDigits") else None
            self._set_balance(detail.balance, digits)
        if event.HasField("depositWithdraw"):
            dw = event.depositWithdraw
            self._set_balance(dw.balance, dw.moneyDigits if dw.HasField("moneyDigits") else None)
        return translate.execution(event, self.digits_of)

    def apply_trailing_stop(self, event: Message) -> None:
        """A ``ProtoOATrailingSLChangedEvent``: the position's stop moved with the market."""
        current = self.positions.get(event.positionId)
        if current is not None:
            stop = units.price_from_wire(event.stopPrice, self.digits_of(current.symbol_id))
            self.positions[event.positionId] = dataclasses.replace(current, stop_loss=stop)

    def apply_spot(self, event: Message) -> Quote:
        quote = translate.quote(event, self.quotes.get(event.symbolId))
        self.quotes[event.symbolId] = quote
        return quote

    def _set_balance(self, balance: int, money_digits: int | None) -> None:
        if self.account is None:
            return
        digits = self.account.money_digits if money_digits is None else money_digits
        self.account = dataclasses.replace(self.account, balance=units.money(balance, digits))

    # --- reading --------------------------------------------------------------------------

    def symbol_ids_in_use(self) -> set[int]:
        """Symbols with an open position or a pending order."""
        return {p.symbol_id for p in self.positions.values()} | {
            o.symbol_id for o in self.orders.values()
        }

    def snapshot(self) -> AccountSnapshot:
        return AccountSnapshot(
            account=self.account,
            positions=tuple(self.positions.values()),
            orders=tuple(self.orders.values()),
            quotes=dict(self.quotes),
        )

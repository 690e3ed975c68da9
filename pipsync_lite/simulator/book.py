"""The order book of the account: positions, orders and deals, and their deterministic ids."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from pipsync_lite import protos

_MODEL = protos.model
BUY: int = _MODEL.BUY
SELL: int = _MODEL.SELL
MARKET: int = _MODEL.MARKET
LIMIT: int = _MODEL.LIMIT
STOP: int = _MODEL.STOP
STOP_LOSS_TAKE_PROFIT: int = _MODEL.STOP_LOSS_TAKE_PROFIT
MARKET_RANGE: int = _MODEL.MARKET_RANGE
STOP_LIMIT: int = _MODEL.STOP_LIMIT
PENDING_TYPES = frozenset({LIMIT, STOP, STOP_LIMIT})
GTD: int = _MODEL.GOOD_TILL_DATE
GTC: int = _MODEL.GOOD_TILL_CANCEL
IOC: int = _MODEL.IMMEDIATE_OR_CANCEL
FOK: int = _MODEL.FILL_OR_KILL


def opposite(side: int) -> int:
    return SELL if side == BUY else BUY


def side_name(side: int) -> str:
    return _MODEL.ProtoOATradeSide.Name(side)


@dataclass(slots=True)
class Order:
    order_id: int
    symbol_id: int
    side: int
    volume: int
    order_type: int
    time_in_force: int
    created_ms: int
    updated_ms: int
    status: int = _MODEL.ORDER_STATUS_ACCEPTED
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    relative_stop_loss: int | None = None
    relative_take_profit: int | None = None
    expiration_ms: int | None = None
    base_slippage_price: Decimal | None = None
    slippage_in_points: int | None = None
    label: str = ""
    comment: str = ""
    client_order_id: str = ""
    position_id: int | None = None
    closing: bool = False
    trailing: bool = False
    guaranteed: bool = False
    stop_trigger_method: int = _MODEL.TRADE
    execution_price: Decimal | None = None
    executed_volume: int = 0
    #: a STOP_LIMIT order whose stop price was reached and now waits as a limit
    triggered: bool = False

    @property
    def is_protection(self) -> bool:
        return self.order_type == STOP_LOSS_TAKE_PROFIT

    @property
    def entry_price(self) -> Decimal | None:
        """The price a pending order's absolute SL/TP are measured against."""
        return self.limit_price if self.order_type == LIMIT else self.stop_price

    @property
    def has_protection_request(self) -> bool:
        return (self.stop_loss is not None or self.take_profit is not None
                or self.relative_stop_loss is not None or self.relative_take_profit is not None)


@dataclass(slots=True)
class Position:
    position_id: int
    symbol_id: int
    side: int
    volume: int
    entry: Decimal
    opened_ms: int
    updated_ms: int
    label: str = ""
    comment: str = ""
    status: int = _MODEL.POSITION_STATUS_OPEN
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing: bool = False
    #: distance the trailing stop keeps behind the closing price
    trail_distance: Decimal | None = None
    guaranteed: bool = False
    stop_loss_trigger_method: int = _MODEL.TRADE
    #: entry commission still attributable to the open volume, cents (negative = charge)
    commission: int = 0
    protection: Order | None = None


@dataclass(frozen=True, slots=True)
class CloseDetail:
    entry_price: Decimal
    gross_profit: int  # cents
    swap: int
    commission: int  # cents, both sides of the closed volume
    balance: int  # cents, after the close
    conversion_rate: Decimal  # quote currency -> deposit currency
    closed_volume: int
    balance_version: int


@dataclass(frozen=True, slots=True)
class Deal:
    deal_id: int
    order_id: int
    position_id: int
    symbol_id: int
    side: int
    volume: int
    price: Decimal
    executed_ms: int
    commission: int  # cents, negative = charge
    close: CloseDetail | None = None


class IdSource:
    """Sequential ids from seed-derived starting points: realistic-looking, reproducible."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"pipsync-sim-ids:{seed}")
        self._next = {kind: rng.randint(100_000_000, 499_999_999)
                      for kind in ("order", "position", "deal")}

    def take(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value


@dataclass(slots=True)
class Book:
    """Everything the account holds; the engine is the only writer."""

    ids: IdSource
    positions: dict[int, Position] = field(default_factory=dict)
    #: live orders: pending ones and STOP_LOSS_TAKE_PROFIT protections
    orders: dict[int, Order] = field(default_factory=dict)
    #: every order ever accepted or rejected, for OrderDetailsReq
    archive: dict[int, Order] = field(default_factory=dict)
    deals: list[Deal] = field(default_factory=list)

    def add_order(self, order: Order, live: bool = True) -> None:
        self.archive[order.order_id] = order
        if live:
            self.orders[order.order_id] = order

    def position_for_symbol(self, symbol_id: int) -> Position | None:
        return next((p for p in self.positions.values() if p.symbol_id == symbol_id), None)

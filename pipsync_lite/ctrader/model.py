"""Broker-facing value types: what crosses the ``ctrader/`` boundary instead of protobufs.

Prices are ``Decimal`` (rounded to the symbol's ``digits``), volumes are ``int`` in the
protocol's units (0.01 of a unit: EURUSD 1 lot = 10,000,000), money is ``Decimal`` in the
account's deposit currency. Nothing here imports protobuf or Twisted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    MARKET_RANGE = "market_range"

    @property
    def is_pending(self) -> bool:
        return self in (OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT)


class TimeInForce(StrEnum):
    GTC = "gtc"
    GTD = "gtd"
    IOC = "ioc"
    FOK = "fok"


class AccountType(StrEnum):
    HEDGED = "hedged"
    NETTED = "netted"
    SPREAD_BETTING = "spread_betting"


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """A tradable symbol with the metadata needed to size and price orders."""

    symbol_id: int
    name: str
    digits: int
    pip_position: int
    lot_size: int  # volume units per lot (EURUSD: 10,000,000)
    min_volume: int
    max_volume: int
    step_volume: int
    base_asset: str = ""
    quote_asset: str = ""
    description: str = ""
    enabled: bool = True
    trading_mode: str = "enabled"  # enabled | disabled | close_only | ...

    @property
    def pip(self) -> Decimal:
        """The size of one pip as a price (EURUSD: 0.0001)."""
        return Decimal(1).scaleb(-self.pip_position)


@dataclass(frozen=True, slots=True)
class Quote:
    bid: Decimal | None
    ask: Decimal | None
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class AccountInfo:
    account_id: int
    balance: Decimal
    money_digits: int
    deposit_asset: str
    leverage: Decimal  # 100 = 1:100
    account_type: AccountType
    is_live: bool = False
    trader_login: int = 0
    broker_name: str = ""


@dataclass(frozen=True, slots=True)
class Position:
    position_id: int
    symbol_id: int
    side: Side
    volume: int
    entry_price: Decimal
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_stop_loss: bool = False
    label: str = ""
    comment: str = ""
    open_timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class PendingOrder:
    order_id: int
    symbol_id: int
    side: Side
    volume: int
    order_type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expiration_ms: int | None = None
    label: str = ""
    comment: str = ""
    client_order_id: str = ""
    position_id: int | None = None
    trailing_stop_loss: bool = False


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One ProtoOANewOrderReq, in our units. Built by the engine, encoded by the client."""

    symbol_id: int
    side: Side
    volume: int
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None  # LIMIT
    stop_price: Decimal | None = None  # STOP, STOP_LIMIT
    time_in_force: TimeInForce | None = None
    expiration_ms: int | None = None  # GTD
    stop_loss: Decimal | None = None  # absolute: pending orders only
    take_profit: Decimal | None = None
    relative_stop_loss: int | None = None  # 1/100000 of price: market orders
    relative_take_profit: int | None = None
    trailing_stop_loss: bool = False
    base_slippage_price: Decimal | None = None  # MARKET_RANGE
    slippage_in_points: int | None = None  # MARKET_RANGE, STOP_LIMIT
    label: str = ""
    comment: str = ""
    client_order_id: str = ""
    position_id: int | None = None  # netted accounts: act on this position


@dataclass(frozen=True, slots=True)
class CloseDetail:
    """What a closing deal realized (``ProtoOAClosePositionDetail``)."""

    entry_price: Decimal
    gross_profit: Decimal
    swap: Decimal
    commission: Decimal
    balance: Decimal  # account balance after the close
    closed_volume: int


@dataclass(frozen=True, slots=True)
class Deal:
    deal_id: int
    order_id: int
    position_id: int
    symbol_id: int
    side: Side
    volume: int
    filled_volume: int
    execution_price: Decimal
    commission: Decimal
    execution_timestamp_ms: int
    close: CloseDetail | None = None  # set on deals that reduce or close a position


@dataclass(frozen=True, slots=True)
class OrderResult:
    """The broker's answer to a new order.

    Market orders: returned once FILLED (``deal`` and ``position`` set). Pending orders:
    returned once ACCEPTED (``order`` set).
    """

    order_id: int
    status: str  # "filled" | "accepted"
    position_id: int | None = None
    execution_price: Decimal | None = None
    filled_volume: int = 0
    position: Position | None = None
    deal: Deal | None = None
    order: PendingOrder | None = None


class ExecutionKind(StrEnum):
    ACCEPTED = "accepted"
    FILLED = "filled"
    PARTIAL_FILL = "partial_fill"
    REPLACED = "replaced"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    CANCEL_REJECTED = "cancel_rejected"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Execution:
    """One ProtoOAExecutionEvent, translated. ``closing_order`` marks SL/TP and close orders."""

    kind: ExecutionKind
    order_id: int | None = None
    order_type: OrderType | None = None  # None for STOP_LOSS_TAKE_PROFIT protective orders
    is_protective: bool = False  # the STOP_LOSS_TAKE_PROFIT order
    closing_order: bool = False
    position: Position | None = None  # None when the position is closed
    position_id: int | None = None
    position_closed: bool = False
    deal: Deal | None = None
    label: str = ""
    client_order_id: str = ""
    error_code: str = ""
    is_server_event: bool = False
    order_stop_price: Decimal | None = None
    order_limit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderDetails:
    """Any order the account ever had (``ProtoOAOrderDetailsRes``), with its deals: how a deal
    from DealList is tied back to its label / clientOrderId and to what closed a position."""

    order_id: int
    symbol_id: int
    side: Side
    order_type: OrderType | None  # None for STOP_LOSS_TAKE_PROFIT protective orders
    is_protective: bool
    closing_order: bool
    label: str = ""
    client_order_id: str = ""
    position_id: int | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    deals: tuple[Deal, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """The broker session changed state: ``ready`` is True once authorized with symbols."""

    ready: bool
    reason: str = ""


BrokerEvent = Execution | ConnectionChange


@dataclass(slots=True)
class AccountSnapshot:
    """What the guard may read: a copy of the broker's state at one instant."""

    account: AccountInfo | None
    positions: tuple[Position, ...] = ()
    orders: tuple[PendingOrder, ...] = ()
    quotes: dict[int, Quote] = field(default_factory=dict)


class Broker(Protocol):
    """What the engine needs from a broker session (implemented by ``ctrader.client``)."""

    @property
    def ready(self) -> bool: ...

    @property
    def account(self) -> AccountInfo | None: ...

    def symbol(self, name: str) -> SymbolInfo | None: ...

    def symbol_by_id(self, symbol_id: int) -> SymbolInfo | None: ...

    def symbol_names(self) -> list[str]: ...

    def quote(self, symbol_id: int) -> Quote | None: ...

    async def subscribe_quotes(self, symbol_ids: set[int]) -> None: ...

    def positions(self) -> list[Position]: ...

    def orders(self) -> list[PendingOrder]: ...

    def snapshot(self) -> AccountSnapshot: ...

    async def place_order(self, request: OrderRequest) -> OrderResult: ...

    async def close_position(self, position_id: int, volume: int) -> Deal: ...

    async def amend_position_sltp(
        self,
        position_id: int,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        trailing_stop_loss: bool = False,
    ) -> Position: ...

    async def cancel_order(self, order_id: int) -> None: ...

    async def amend_order(self, order_id: int, **changes: Any) -> PendingOrder:
        """Change a pending order; fields not given keep their current values."""
        ...

    async def unrealized_pnl(self) -> list[UnrealizedPnL]: ...


@dataclass(frozen=True, slots=True)
class UnrealizedPnL:
    """One open position's floating P/L in the deposit currency (``GetPositionUnrealizedPnLRes``)."""

    position_id: int
    gross: Decimal
    net: Decimal  # after commissions and swap

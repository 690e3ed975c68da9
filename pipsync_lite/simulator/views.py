"""Read-only snapshots of the account's positions, orders and deals for tests."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pipsync_lite import protos
from pipsync_lite.simulator.account import from_cents
from pipsync_lite.simulator.book import Deal, Order, Position, side_name
from pipsync_lite.simulator.instruments import Catalogue

_MODEL = protos.model


@dataclass(frozen=True, slots=True)
class PositionView:
    position_id: int
    symbol: str
    side: str  # "BUY" / "SELL"
    volume: int
    entry_price: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    trailing: bool
    label: str
    comment: str
    commission: Decimal  # entry commission still attributed to the open volume
    protection_order_id: int | None
    opened_ms: int


@dataclass(frozen=True, slots=True)
class OrderView:
    order_id: int
    symbol: str
    side: str
    order_type: str  # "LIMIT", "STOP_LOSS_TAKE_PROFIT", ...
    status: str  # "ORDER_STATUS_ACCEPTED", ...
    volume: int
    time_in_force: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    relative_stop_loss: int | None
    relative_take_profit: int | None
    expiration_ms: int | None
    label: str
    comment: str
    client_order_id: str
    position_id: int | None
    closing: bool


@dataclass(frozen=True, slots=True)
class DealView:
    deal_id: int
    order_id: int
    position_id: int
    symbol: str
    side: str
    volume: int
    price: Decimal
    commission: Decimal
    executed_ms: int
    gross_profit: Decimal | None  # only on deals that closed volume
    closed_volume: int | None
    balance_after: Decimal | None


def position_view(pos: Position, catalogue: Catalogue) -> PositionView:
    return PositionView(
        pos.position_id, catalogue.resolve(pos.symbol_id).name, side_name(pos.side), pos.volume,
        pos.entry, pos.stop_loss, pos.take_profit, pos.trailing, pos.label, pos.comment,
        from_cents(pos.commission),
        pos.protection.order_id if pos.protection is not None else None, pos.opened_ms)


def order_view(order: Order, catalogue: Catalogue) -> OrderView:
    return OrderView(
        order.order_id, catalogue.resolve(order.symbol_id).name, side_name(order.side),
        _MODEL.ProtoOAOrderType.Name(order.order_type),
        _MODEL.ProtoOAOrderStatus.Name(order.status), order.volume,
        _MODEL.ProtoOATimeInForce.Name(order.time_in_force), order.limit_price,
        order.stop_price, order.stop_loss, order.take_profit, order.relative_stop_loss,
        order.relative_take_profit, order.expiration_ms, order.label, order.comment,
        order.client_order_id, order.position_id, order.closing)


def deal_view(deal: Deal, catalogue: Catalogue) -> DealView:
    close = deal.close
    return DealView(
        deal.deal_id, deal.order_id, deal.position_id, catalogue.resolve(deal.symbol_id).name,
        side_name(deal.side), deal.volume, deal.price, from_cents(deal.commission),
        deal.executed_ms,
        from_cents(close.gross_profit) if close is not None else None,
        close.closed_volume if close is not None else None,
        from_cents(close.balance) if close is not None else None)

"""Protobuf messages ↔ the boundary types of :mod:`pipsync_lite.ctrader.model`.

Pure functions, no I/O: Open API messages in, frozen dataclasses out (and the reverse for
requests). Numbers go through :mod:`pipsync_lite.ctrader.units`. Prices on orders and positions
need their symbol's ``digits``; callers pass a ``digits_of(symbol_id)`` lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from google.protobuf.message import Message

from pipsync_lite import protos
from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.model import (
    AccountInfo,
    AccountType,
    CloseDetail,
    Deal,
    Execution,
    ExecutionKind,
    OrderDetails,
    OrderRequest,
    OrderType,
    PendingOrder,
    Position,
    Quote,
    Side,
    SymbolInfo,
    TimeInForce,
    UnrealizedPnL,
)

M = protos.model
DigitsOf = Callable[[int], int]
DEFAULT_DIGITS = 5  # spot precision; used only for a symbol we do not know

_SIDE = {M.BUY: Side.BUY, M.SELL: Side.SELL}
_SIDE_TO_WIRE = {Side.BUY: M.BUY, Side.SELL: M.SELL}
_ORDER_TYPE = {
    M.MARKET: OrderType.MARKET,
    M.LIMIT: OrderType.LIMIT,
    M.STOP: OrderType.STOP,
    M.STOP_LIMIT: OrderType.STOP_LIMIT,
    M.MARKET_RANGE: OrderType.MARKET_RANGE,
}
_ORDER_TYPE_TO_WIRE = {v: k for k, v in _ORDER_TYPE.items()}
_TIF = {
    M.GOOD_TILL_DATE: TimeInForce.GTD,
    M.GOOD_TILL_CANCEL: TimeInForce.GTC,
    M.IMMEDIATE_OR_CANCEL: TimeInForce.IOC,
    M.FILL_OR_KILL: TimeInForce.FOK,
}
_TIF_TO_WIRE = {v: k for k, v in _TIF.items()}
_EXECUTION_KIND = {
    M.ORDER_ACCEPTED: ExecutionKind.ACCEPTED,
    M.ORDER_FILLED: ExecutionKind.FILLED,
    M.ORDER_PARTIAL_FILL: ExecutionKind.PARTIAL_FILL,
    M.ORDER_REPLACED: ExecutionKind.REPLACED,
    M.ORDER_CANCELLED: ExecutionKind.CANCELLED,
    M.ORDER_EXPIRED: ExecutionKind.EXPIRED,
    M.ORDER_REJECTED: ExecutionKind.REJECTED,
    M.ORDER_CANCEL_REJECTED: ExecutionKind.CANCEL_REJECTED,
}
_ACCOUNT_TYPE = {
    M.HEDGED: AccountType.HEDGED,
    M.NETTED: AccountType.NETTED,
    M.SPREAD_BETTING: AccountType.SPREAD_BETTING,
}
_TRADING_MODE = {
    M.ENABLED: "enabled",
    M.DISABLED_WITHOUT_PENDINGS_EXECUTION: "disabled",
    M.DISABLED_WITH_PENDINGS_EXECUTION: "disabled_with_pendings",
    M.CLOSE_ONLY_MODE: "close_only",
}


def _opt(message: Message, name: str) -> object | None:
    return getattr(message, name) if message.HasField(name) else None


def _price(message: Message, name: str, digits: int) -> Decimal | None:
    if not message.HasField(name):
        return None
    return units.price_from_wire(getattr(message, name), digits)


def _money_digits(message: Message, fallback: int = 2) -> int:
    # A missing moneyDigits is read as 2 (what third-party clients assume; UNVERIFIED).
    return message.moneyDigits if message.HasField("moneyDigits") else fallback


# --- reference data -------------------------------------------------------------------------


def symbol_info(
    light: Message, full: Message, asset_names: Mapping[int, str]
) -> SymbolInfo:
    """A ``ProtoOALightSymbol`` and its ``ProtoOASymbol`` as one SymbolInfo."""
    return SymbolInfo(
        symbol_id=full.symbolId,
        name=light.symbolName,
        digits=full.digits,
        pip_position=full.pipPosition,
        lot_size=full.lotSize,
        min_volume=full.minVolume,
        max_volume=full.maxVolume,
        step_volume=full.stepVolume,
        base_asset=asset_names.get(light.baseAssetId, ""),
        quote_asset=asset_names.get(light.quoteAssetId, ""),
        description=light.description,
        enabled=light.enabled if light.HasField("enabled") else True,
        trading_mode=_TRADING_MODE.get(full.tradingMode, "enabled"),
    )


def account_info(
    trader: Message,
    asset_names: Mapping[int, str],
    is_live: bool = False,
) -> AccountInfo:
    """A ``ProtoOATrader`` as AccountInfo."""
    digits = _money_digits(trader)
    return AccountInfo(
        account_id=trader.ctidTraderAccountId,
        balance=units.money(trader.balance, digits),
        money_digits=digits,
        deposit_asset=asset_names.get(trader.depositAssetId, ""),
        leverage=units.leverage(trader.leverageInCents) if trader.HasField("leverageInCents") else Decimal(0),
        account_type=_ACCOUNT_TYPE.get(trader.accountType, AccountType.HEDGED),
        is_live=is_live,
        trader_login=trader.traderLogin,
        broker_name=trader.brokerName,
    )


# --- trading state ------------------------------------------------------------------------


def position(p: Message, digits_of: DigitsOf) -> Position:
    """A ``ProtoOAPosition`` as Position (entry price 0 while it has none)."""
    trade = p.tradeData
    digits = digits_of(trade.symbolId)
    return Position(
        position_id=p.positionId,
        symbol_id=trade.symbolId,
        side=_SIDE[trade.tradeSide],
        volume=trade.volume,
        entry_price=_price(p, "price", digits) or Decimal(0),
        stop_loss=_price(p, "stopLoss", digits),
        take_profit=_price(p, "takeProfit", digits),
        trailing_stop_loss=p.trailingStopLoss,
        label=trade.label,
        comment=trade.comment,
        open_timestamp_ms=trade.openTimestamp,
    )


def is_open_position(p: Message) -> bool:
    return p.positionStatus == M.POSITION_STATUS_OPEN and p.tradeData.volume > 0


def is_protective(order: Message) -> bool:
    """The server's STOP_LOSS_TAKE_PROFIT order carrying a position's SL/TP."""
    return order.orderType == M.STOP_LOSS_TAKE_PROFIT


def is_user_pending(order: Message) -> bool:
    """A resting LIMIT/STOP/STOP_LIMIT order the user placed (not a protective or closing one)."""
    return (
        order.orderType in (M.LIMIT, M.STOP, M.STOP_LIMIT)
        and not order.closingOrder
        and order.orderStatus == M.ORDER_STATUS_ACCEPTED
    )


def pending_order(o: Message, digits_of: DigitsOf) -> PendingOrder:
    """A ``ProtoOAOrder`` as PendingOrder; ``volume`` is what is left to fill."""
    trade = o.tradeData
    digits = digits_of(trade.symbolId)
    return PendingOrder(
        order_id=o.orderId,
        symbol_id=trade.symbolId,
        side=_SIDE[trade.tradeSide],
        volume=trade.volume - o.executedVolume,
        order_type=_ORDER_TYPE.get(o.orderType, OrderType.LIMIT),
        limit_price=_price(o, "limitPrice", digits),
        stop_price=_price(o, "stopPrice", digits),
        stop_loss=_price(o, "stopLoss", digits),
        take_profit=_price(o, "takeProfit", digits),
        time_in_force=_TIF.get(o.timeInForce, TimeInForce.GTC),
        expiration_ms=_opt(o, "expirationTimestamp"),  # type: ignore[arg-type]
        label=trade.label,
        comment=trade.comment,
        client_order_id=o.clientOrderId,
        position_id=o.positionId if o.HasField("positionId") and o.positionId else None,
        trailing_stop_loss=o.trailingStopLoss,
    )


def deal(d: Message, digits_of: DigitsOf) -> Deal:
    """A ``ProtoOADeal`` as Deal, with its close detail when it reduced a position."""
    digits = digits_of(d.symbolId)
    money_digits = _money_digits(d)
    close = None
    if d.HasField("closePositionDetail"):
        c = d.closePositionDetail
        cd = _money_digits(c, money_digits)
        close = CloseDetail(
            entry_price=units.price_from_wire(c.entryPrice, digits),
            gross_profit=units.money(c.grossProfit, cd),
            swap=units.money(c.swap, cd),
            commission=units.money(c.commission, cd),
            balance=units.money(c.balance, cd),
            closed_volume=c.closedVolume,
        )
    return Deal(
        deal_id=d.dealId,
        order_id=d.orderId,
        position_id=d.positionId,
        symbol_id=d.symbolId,
        side=_SIDE[d.tradeSide],
        volume=d.volume,
        filled_volume=d.filledVolume,
        execution_price=_price(d, "executionPrice", digits) or Decimal(0),
        commission=units.money(d.commission, money_digits),
        execution_timestamp_ms=d.executionTimestamp,
        close=close,
    )


def execution(event: Message, digits_of: DigitsOf) -> Execution:
    """A ``ProtoOAExecutionEvent`` as Execution."""
    order = event.order if event.HasField("order") else None
    pos = event.position if event.HasField("position") else None
    order_digits = digits_of(order.tradeData.symbolId) if order is not None else DEFAULT_DIGITS
    return Execution(
        kind=_EXECUTION_KIND.get(event.executionType, ExecutionKind.OTHER),
        order_id=order.orderId if order is not None else None,
        order_type=_ORDER_TYPE.get(order.orderType) if order is not None else None,
        is_protective=order is not None and is_protective(order),
        closing_order=order is not None and order.closingOrder,
        position=position(pos, digits_of) if pos is not None and is_open_position(pos) else None,
        position_id=pos.positionId if pos is not None else (
            order.positionId if order is not None and order.positionId else None
        ),
        position_closed=pos is not None and pos.positionStatus == M.POSITION_STATUS_CLOSED,
        deal=deal(event.deal, digits_of) if event.HasField("deal") else None,
        label=order.tradeData.label if order is not None else "",
        client_order_id=order.clientOrderId if order is not None else "",
        error_code=event.errorCode,
        is_server_event=event.isServerEvent,
        order_stop_price=_price(order, "stopPrice", order_digits) if order is not None else None,
        order_limit_price=_price(order, "limitPrice", order_digits) if order is not None else None,
    )


def order_details(res: Message, digits_of: DigitsOf) -> OrderDetails:
    """A ``ProtoOAOrderDetailsRes`` as OrderDetails."""
    o = res.order
    digits = digits_of(o.tradeData.symbolId)
    return OrderDetails(
        order_id=o.orderId,
        symbol_id=o.tradeData.symbolId,
        side=_SIDE[o.tradeData.tradeSide],
        order_type=_ORDER_TYPE.get(o.orderType),
        is_protective=is_protective(o),
        closing_order=o.closingOrder,
        label=o.tradeData.label,
        client_order_id=o.clientOrderId,
        position_id=o.positionId if o.HasField("positionId") and o.positionId else None,
        stop_price=_price(o, "stopPrice", digits),
        limit_price=_price(o, "limitPrice", digits),
        deals=tuple(deal(d, digits_of) for d in res.deal),
    )


def quote(event: Message, previous: Quote | None) -> Quote:
    """A SpotEvent applied to the previous quote: a side the event omits keeps its value."""
    bid = units.spot_to_price(event.bid) if event.HasField("bid") else (previous.bid if previous else None)
    ask = units.spot_to_price(event.ask) if event.HasField("ask") else (previous.ask if previous else None)
    timestamp = event.timestamp if event.HasField("timestamp") else (previous.timestamp_ms if previous else 0)
    return Quote(bid=bid, ask=ask, timestamp_ms=timestamp)


def unrealized_pnl(res: Message) -> list[UnrealizedPnL]:
    digits = res.moneyDigits
    return [
        UnrealizedPnL(
            position_id=p.positionId,
            gross=units.money(p.grossUnrealizedPnL, digits),
            net=units.money(p.netUnrealizedPnL, digits),
        )
        for p in res.positionUnrealizedPnL
    ]


# --- requests -----------------------------------------------------------------------------


def new_order_request(request: OrderRequest, account_id: int, symbol: SymbolInfo) -> Message:
    """An OrderRequest as ``ProtoOANewOrderReq``, prices rounded to the symbol's digits."""
    digits = symbol.digits
    msg = protos.messages.ProtoOANewOrderReq(
        ctidTraderAccountId=account_id,
        symbolId=request.symbol_id,
        orderType=_ORDER_TYPE_TO_WIRE[request.order_type],
        tradeSide=_SIDE_TO_WIRE[request.side],
        volume=request.volume,
    )
    if request.limit_price is not None:
        msg.limitPrice = units.price_to_wire(request.limit_price, digits)
    if request.stop_price is not None:
        msg.stopPrice = units.price_to_wire(request.stop_price, digits)
    if request.time_in_force is not None:
        msg.timeInForce = _TIF_TO_WIRE[request.time_in_force]
    if request.expiration_ms is not None:
        msg.expirationTimestamp = request.expiration_ms
    if request.stop_loss is not None:
        msg.stopLoss = units.price_to_wire(request.stop_loss, digits)
    if request.take_profit is not None:
        msg.takeProfit = units.price_to_wire(request.take_profit, digits)
    if request.relative_stop_loss is not None:
        msg.relativeStopLoss = request.relative_stop_loss
    if request.relative_take_profit is not None:
        msg.relativeTakeProfit = request.relative_take_profit
    if request.trailing_stop_loss:
        msg.trailingStopLoss = True
    if request.base_slippage_price is not None:
        msg.baseSlippagePrice = units.price_to_wire(request.base_slippage_price, digits)
    if request.slippage_in_points is not None:
        msg.slippageInPoints = request.slippage_in_points
    if request.label:
        msg.label = request.label
    if request.comment:
        msg.comment = request.comment
    if request.client_order_id:
        msg.clientOrderId = request.client_order_id
    if request.position_id is not None:
        msg.positionId = request.position_id
    return msg


def check_order_request(request: OrderRequest, symbol: SymbolInfo) -> None:
    """Raise ``ValueError`` for requests the server would refuse for their shape."""
    units.check_volume(request.volume, symbol)
    if request.order_type is OrderType.LIMIT and request.limit_price is None:
        raise ValueError("a LIMIT order needs limit_price")
    if request.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and request.stop_price is None:
        raise ValueError(f"a {request.order_type.value.upper()} order needs stop_price")
    if request.order_type is OrderType.MARKET_RANGE and (
        request.base_slippage_price is None or request.slippage_in_points is None
    ):
        raise ValueError("a MARKET_RANGE order needs base_slippage_price and slippage_in_points")
    if not request.order_type.is_pending and (
        request.stop_loss is not None or request.take_profit is not None
    ):
        # The API documents absolute SL/TP as "not supported for MARKET orders" (what the
        # server does with them is unverified): market orders carry relative distances.
        raise ValueError(
            f"a {request.order_type.value.upper()} order takes relative_stop_loss/"
            "relative_take_profit, not absolute stop_loss/take_profit"
        )
    if request.time_in_force is TimeInForce.GTD and request.expiration_ms is None:
        raise ValueError("a GTD order needs expiration_ms")
    if len(request.label) > 100:
        raise ValueError(f"label is {len(request.label)} characters, the limit is 100")
    if len(request.comment) > 512:
        raise ValueError(f"comment is {len(request.comment)} characters, the limit is 512")
    if len(request.client_order_id) > 50:
        raise ValueError(f"client_order_id is {len(request.client_order_id)} characters, the limit is 50")

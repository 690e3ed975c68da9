"""Open API renderings of positions, orders, deals and execution events.

Prices are doubles on the wire (the protocol's choice); everything is kept as Decimal
until this boundary.
"""

from __future__ import annotations

from google.protobuf.message import Message

from pipsync_lite import protos
from pipsync_lite.simulator.account import MONEY_DIGITS
from pipsync_lite.simulator.book import Deal, Order, Position

_MODEL = protos.model


def trade_data(symbol_id: int, volume: int, side: int, opened_ms: int, label: str,
               comment: str, guaranteed: bool) -> Message:
    data = _MODEL.ProtoOATradeData(symbolId=symbol_id, volume=volume, tradeSide=side,
                                   openTimestamp=opened_ms, guaranteedStopLoss=guaranteed)
    if label:
        data.label = label
    if comment:
        data.comment = comment
    return data


def position(pos: Position, used_margin: int = 0) -> Message:
    message = _MODEL.ProtoOAPosition(
        positionId=pos.position_id,
        tradeData=trade_data(pos.symbol_id, pos.volume, pos.side, pos.opened_ms, pos.label,
                             pos.comment, pos.guaranteed),
        positionStatus=pos.status, swap=0, utcLastUpdateTimestamp=pos.updated_ms,
        commission=pos.commission, mirroringCommission=0,
        guaranteedStopLoss=pos.guaranteed, usedMargin=used_margin,
        stopLossTriggerMethod=pos.stop_loss_trigger_method, moneyDigits=MONEY_DIGITS,
        trailingStopLoss=pos.trailing,
    )
    if pos.status != _MODEL.POSITION_STATUS_CREATED:
        message.price = float(pos.entry)
    if pos.stop_loss is not None:
        message.stopLoss = float(pos.stop_loss)
    if pos.take_profit is not None:
        message.takeProfit = float(pos.take_profit)
    return message


def order(o: Order) -> Message:
    message = _MODEL.ProtoOAOrder(
        orderId=o.order_id,
        tradeData=trade_data(o.symbol_id, o.volume, o.side, o.created_ms, o.label,
                             o.comment, o.guaranteed),
        orderType=o.order_type, orderStatus=o.status, executedVolume=o.executed_volume,
        utcLastUpdateTimestamp=o.updated_ms, closingOrder=o.closing,
        timeInForce=o.time_in_force, trailingStopLoss=o.trailing, isStopOut=False,
        stopTriggerMethod=o.stop_trigger_method,
    )
    optional = {
        "limitPrice": o.limit_price, "stopPrice": o.stop_price, "stopLoss": o.stop_loss,
        "takeProfit": o.take_profit, "executionPrice": o.execution_price,
        "baseSlippagePrice": o.base_slippage_price,
    }
    for name, value in optional.items():
        if value is not None:
            setattr(message, name, float(value))
    for name, value in (("relativeStopLoss", o.relative_stop_loss),
                        ("relativeTakeProfit", o.relative_take_profit),
                        ("slippageInPoints", o.slippage_in_points),
                        ("expirationTimestamp", o.expiration_ms),
                        ("positionId", o.position_id)):
        if value is not None:
            setattr(message, name, value)
    if o.client_order_id:
        message.clientOrderId = o.client_order_id
    return message


def deal(d: Deal) -> Message:
    message = _MODEL.ProtoOADeal(
        dealId=d.deal_id, orderId=d.order_id, positionId=d.position_id, volume=d.volume,
        filledVolume=d.volume, symbolId=d.symbol_id, createTimestamp=d.executed_ms,
        executionTimestamp=d.executed_ms, utcLastUpdateTimestamp=d.executed_ms,
        executionPrice=float(d.price), tradeSide=d.side, dealStatus=_MODEL.FILLED,
        commission=d.commission, moneyDigits=MONEY_DIGITS,
    )
    if d.close is not None:
        c = d.close
        message.closePositionDetail.CopyFrom(_MODEL.ProtoOAClosePositionDetail(
            entryPrice=float(c.entry_price), grossProfit=c.gross_profit, swap=c.swap,
            commission=c.commission, balance=c.balance,
            quoteToDepositConversionRate=float(c.conversion_rate),
            closedVolume=c.closed_volume, balanceVersion=c.balance_version,
            moneyDigits=MONEY_DIGITS, pnlConversionFee=0))
    return message


def spot(account_id: int, symbol_id: int, bid: int | None, ask: int | None,
         timestamp_ms: int | None) -> Message:
    """A SpotEvent with the sides given (spot units, 1/100000); absent sides are unchanged."""
    event = protos.messages.ProtoOASpotEvent(ctidTraderAccountId=account_id, symbolId=symbol_id)
    if bid is not None:
        event.bid = bid
    if ask is not None:
        event.ask = ask
    if timestamp_ms is not None:
        event.timestamp = timestamp_ms
    return event


def execution(account_id: int, execution_type: int, *, order_msg: Message | None = None,
              position_msg: Message | None = None, deal_msg: Message | None = None,
              server: bool = False, error_code: str | None = None) -> Message:
    event = protos.messages.ProtoOAExecutionEvent(
        ctidTraderAccountId=account_id, executionType=execution_type, isServerEvent=server)
    if order_msg is not None:
        event.order.CopyFrom(order_msg)
    if position_msg is not None:
        event.position.CopyFrom(position_msg)
    if deal_msg is not None:
        event.deal.CopyFrom(deal_msg)
    if error_code:
        event.errorCode = error_code
    return event

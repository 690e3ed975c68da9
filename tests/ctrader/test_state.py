"""State kept from events: positions, user orders (never protective ones), balance, quotes."""

from __future__ import annotations

from decimal import Decimal

from pipsync_lite import protos
from pipsync_lite.ctrader.model import AccountInfo, AccountType, ExecutionKind, OrderType, Side, SymbolInfo
from pipsync_lite.ctrader.state import BrokerState

M = protos.model
P = protos.messages
ACCOUNT = 1234
EURUSD = SymbolInfo(1, "EURUSD", 5, 4, 10_000_000, 100_000, 10_000_000_000, 100_000)


def state() -> BrokerState:
    s = BrokerState()
    s.set_symbols([EURUSD])
    s.account = AccountInfo(ACCOUNT, Decimal("10000.00"), 2, "USD", Decimal(100), AccountType.HEDGED)
    return s


def position(status: int = M.POSITION_STATUS_OPEN, volume: int = 1_000_000, **extra: object) -> object:
    return M.ProtoOAPosition(
        positionId=7,
        tradeData=M.ProtoOATradeData(symbolId=1, volume=volume, tradeSide=M.BUY, label="sig-1"),
        positionStatus=status,
        swap=0,
        price=1.10012,
        **extra,
    )


def order(order_type: int, status: int = M.ORDER_STATUS_ACCEPTED, **extra: object) -> object:
    return M.ProtoOAOrder(
        orderId=extra.pop("orderId", 11),  # type: ignore[arg-type]
        tradeData=M.ProtoOATradeData(symbolId=1, volume=1_000_000, tradeSide=M.SELL),
        orderType=order_type,
        orderStatus=status,
        **extra,
    )


def event(execution_type: int, **fields: object) -> object:
    return P.ProtoOAExecutionEvent(ctidTraderAccountId=ACCOUNT, executionType=execution_type, **fields)


def test_protective_order_sets_levels_on_the_position_and_is_not_a_user_order() -> None:
    s = state()
    s.apply_execution(event(M.ORDER_FILLED, position=position(), order=order(M.MARKET, M.ORDER_STATUS_FILLED)))
    ex = s.apply_execution(event(
        M.ORDER_ACCEPTED,
        position=position(stopLoss=1.0985, takeProfit=1.1032),
        order=order(M.STOP_LOSS_TAKE_PROFIT, orderId=12, closingOrder=True, stopPrice=1.0985, limitPrice=1.1032),
        isServerEvent=True,
    ))
    assert s.orders == {}
    assert s.positions[7].stop_loss == Decimal("1.09850")
    assert s.positions[7].take_profit == Decimal("1.10320")
    assert ex.is_protective and ex.order_type is None and ex.is_server_event
    assert ex.order_stop_price == Decimal("1.09850")


def test_sl_hit_closes_the_position_and_updates_the_balance() -> None:
    s = state()
    s.apply_execution(event(M.ORDER_FILLED, position=position()))
    detail = M.ProtoOAClosePositionDetail(entryPrice=1.10012, grossProfit=-8081, swap=0, commission=-70,
                                          balance=991849, moneyDigits=2, closedVolume=1_000_000)
    deal = M.ProtoOADeal(dealId=5, orderId=12, positionId=7, volume=1_000_000, filledVolume=1_000_000,
                         symbolId=1, createTimestamp=1, executionTimestamp=2, executionPrice=1.0985,
                         tradeSide=M.SELL, dealStatus=M.FILLED, closePositionDetail=detail, moneyDigits=2)
    ex = s.apply_execution(event(M.ORDER_FILLED, position=position(M.POSITION_STATUS_CLOSED, volume=0),
                                 order=order(M.STOP_LOSS_TAKE_PROFIT, M.ORDER_STATUS_FILLED, orderId=12),
                                 deal=deal, isServerEvent=True))
    assert s.positions == {}
    assert s.account is not None and s.account.balance == Decimal("9918.49")
    assert ex.kind is ExecutionKind.FILLED and ex.position_closed and ex.position is None
    assert ex.deal is not None and ex.deal.close is not None
    assert ex.deal.close.gross_profit == Decimal("-80.81")
    assert ex.deal.side is Side.SELL


def test_pending_orders_come_and_go() -> None:
    s = state()
    s.apply_execution(event(M.ORDER_ACCEPTED, order=order(M.LIMIT, limitPrice=1.2, clientOrderId="c1")))
    assert s.orders[11].order_type is OrderType.LIMIT
    assert s.orders[11].limit_price == Decimal("1.20000")
    assert s.orders[11].client_order_id == "c1"
    s.apply_execution(event(M.ORDER_PARTIAL_FILL, order=order(M.LIMIT, limitPrice=1.2, executedVolume=400_000)))
    assert s.orders[11].volume == 600_000
    s.apply_execution(event(M.ORDER_CANCELLED, order=order(M.LIMIT, M.ORDER_STATUS_CANCELLED)))
    assert s.orders == {}


def test_created_position_of_an_accepted_market_order_is_not_open_yet() -> None:
    s = state()
    s.apply_execution(event(M.ORDER_ACCEPTED, position=position(M.POSITION_STATUS_CREATED, volume=0),
                            order=order(M.MARKET)))
    assert s.positions == {} and s.orders == {}


def test_a_spot_event_with_one_side_keeps_the_other() -> None:
    s = state()
    s.apply_spot(P.ProtoOASpotEvent(ctidTraderAccountId=ACCOUNT, symbolId=1, bid=111986, ask=111990))
    quote = s.apply_spot(P.ProtoOASpotEvent(ctidTraderAccountId=ACCOUNT, symbolId=1, bid=111987))
    assert (quote.bid, quote.ask) == (Decimal("1.11987"), Decimal("1.11990"))


def test_reconcile_replaces_everything_and_skips_protective_orders() -> None:
    s = state()
    s.apply_execution(event(M.ORDER_ACCEPTED, order=order(M.LIMIT, limitPrice=1.2, orderId=99)))
    s.apply_reconcile(P.ProtoOAReconcileRes(
        ctidTraderAccountId=ACCOUNT,
        position=[position(stopLoss=1.09)],
        order=[order(M.STOP_LOSS_TAKE_PROFIT, orderId=12, closingOrder=True, stopPrice=1.09),
               order(M.STOP, stopPrice=1.3, orderId=13)],
    ))
    assert list(s.positions) == [7] and s.positions[7].stop_loss == Decimal("1.09000")
    assert list(s.orders) == [13]
    assert s.symbol_ids_in_use() == {1}


def test_trailing_stop_moves_the_positions_stop() -> None:
    s = state()
    s.apply_execution(event(M.ORDER_FILLED, position=position(stopLoss=1.09, trailingStopLoss=True)))
    s.apply_trailing_stop(P.ProtoOATrailingSLChangedEvent(ctidTraderAccountId=ACCOUNT, positionId=7, orderId=12,
                                                         stopPrice=1.0912, utcLastUpdateTimestamp=3))
    assert s.positions[7].stop_loss == Decimal("1.09120")
    assert s.positions[7].trailing_stop_loss


def test_symbol_lookup_is_exact_then_case_insensitive() -> None:
    s = state()
    assert s.symbol("EURUSD") is EURUSD
    assert s.symbol("eurusd") is EURUSD
    assert s.symbol("GBPUSD") is None

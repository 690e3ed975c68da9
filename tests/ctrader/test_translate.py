"""Encoding OrderRequest into ProtoOANewOrderReq: enums, rounded doubles, relative ints, checks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipsync_lite import protos
from pipsync_lite.ctrader import translate
from pipsync_lite.ctrader.model import OrderRequest, OrderType, Side, SymbolInfo, TimeInForce

M = protos.model
EURUSD = SymbolInfo(1, "EURUSD", 5, 4, 10_000_000, 100_000, 10_000_000_000, 100_000)


def test_market_order_with_relative_levels() -> None:
    request = OrderRequest(symbol_id=1, side=Side.BUY, volume=1_000_000, relative_stop_loss=150,
                           relative_take_profit=300, label="sig-1", comment="c", client_order_id="sig-1")
    translate.check_order_request(request, EURUSD)
    msg = translate.new_order_request(request, 42, EURUSD)
    assert (msg.ctidTraderAccountId, msg.symbolId, msg.volume) == (42, 1, 1_000_000)
    assert msg.orderType == M.MARKET and msg.tradeSide == M.BUY
    assert (msg.relativeStopLoss, msg.relativeTakeProfit) == (150, 300)
    assert not msg.HasField("stopLoss") and not msg.HasField("takeProfit")
    assert (msg.label, msg.comment, msg.clientOrderId) == ("sig-1", "c", "sig-1")


def test_pending_order_prices_are_rounded_to_the_symbols_digits() -> None:
    request = OrderRequest(symbol_id=1, side=Side.SELL, volume=100_000, order_type=OrderType.LIMIT,
                           limit_price=Decimal("1.1234567"), stop_loss=Decimal("1.13"),
                           take_profit=Decimal("1.11"), time_in_force=TimeInForce.GTD, expiration_ms=99)
    msg = translate.new_order_request(request, 42, EURUSD)
    assert msg.orderType == M.LIMIT and msg.tradeSide == M.SELL
    assert msg.limitPrice == 1.12346
    assert (msg.stopLoss, msg.takeProfit) == (1.13, 1.11)
    assert msg.timeInForce == M.GOOD_TILL_DATE and msg.expirationTimestamp == 99


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (OrderRequest(1, Side.BUY, 100_000, stop_loss=Decimal("1.1")), "relative_stop_loss"),
        (OrderRequest(1, Side.BUY, 100_000, order_type=OrderType.LIMIT), "needs limit_price"),
        (OrderRequest(1, Side.BUY, 100_000, order_type=OrderType.STOP), "needs stop_price"),
        (OrderRequest(1, Side.BUY, 150_000), "not a multiple of the step"),
        (OrderRequest(1, Side.BUY, 100_000, client_order_id="x" * 51), "limit is 50"),
    ],
)
def test_requests_the_server_would_refuse_are_refused_before_sending(request_: OrderRequest, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        translate.check_order_request(request_, EURUSD)

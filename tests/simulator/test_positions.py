"""Positions and orders after the fill: SL/TP hits, closes, amends, cancels, history, P/L."""

from __future__ import annotations

import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from pipsync_lite.simulator import Simulator

from .wire import MODEL, M, WireClient, kinds, new_order, trade

LOT = 10_000_000
CENT = Decimal("0.01")


@pytest.fixture(autouse=True)
def prices(sim: Simulator) -> None:
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    sim.set_price("GBPUSD", bid=Decimal("1.25000"), ask=Decimal("1.25010"))
    sim.set_price("USDJPY", bid=Decimal("150.000"), ask=Decimal("150.012"))
    sim.set_price("EURGBP", bid=Decimal("0.85000"), ask=Decimal("0.85015"))


async def _open(client: WireClient, sim: Simulator, symbol: str = "EURUSD",
                side: str = "BUY", volume: int = LOT, **fields: Any) -> Any:
    protected = "relativeStopLoss" in fields or "relativeTakeProfit" in fields
    got = await trade(client, new_order(sim, symbol, side, volume, **fields),
                      events=3 if protected else 2)
    return got[1].position


async def test_stop_loss_hit_closes_with_one_server_fill_and_exact_money(
        sim: Simulator, client: WireClient) -> None:
    pos = await _open(client, sim, relativeStopLoss=100, relativeTakeProfit=300)
    assert pos.price == 1.10010
    start = len(client.inbox)
    sim.set_price("EURUSD", bid=Decimal("1.09910"), ask=Decimal("1.09920"))
    event = await client.wait_named("ProtoOAExecutionEvent", start=start)
    assert kinds([event]) == ["ORDER_FILLED"] and event.isServerEvent
    assert event.order.orderType == MODEL.STOP_LOSS_TAKE_PROFIT
    assert event.order.orderStatus == MODEL.ORDER_STATUS_FILLED
    assert event.order.executionPrice == 1.09910 and event.order.stopPrice == 1.09910
    assert event.position.positionStatus == MODEL.POSITION_STATUS_CLOSED
    assert event.position.tradeData.volume == 0
    detail = event.deal.closePositionDetail
    # 100 points against a 1-lot long: -100.00 USD; $3 commission on each side.
    assert (detail.grossProfit, detail.commission, detail.swap) == (-10_000, -600, 0)
    assert detail.entryPrice == 1.10010 and detail.closedVolume == LOT
    assert detail.balance == 1_000_000 - 10_000 - 600 and detail.moneyDigits == 2
    assert event.deal.commission == -300
    assert sim.balance == Decimal("9894.00")
    assert not sim.positions() and not sim.orders()
    await client.request(M.ProtoOAVersionReq())
    assert len(client.named("ProtoOAExecutionEvent", start=start)) == 1
    trader = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=sim.account_id))
    assert trader.trader.balance == 989_400


async def test_usdjpy_take_profit_converts_yen_profit_through_usdjpy(
        sim: Simulator, client: WireClient) -> None:
    await _open(client, sim, "USDJPY", relativeTakeProfit=50_000)  # 0.5 above 150.012
    sim.set_price("USDJPY", bid=Decimal("150.512"), ask=Decimal("150.524"))
    await sim.wait_for(lambda: not sim.positions())
    [_, closing] = sim.deals()
    yen = Decimal("0.5") * 100_000
    expected = (yen / Decimal("150.518")).quantize(CENT, rounding=ROUND_HALF_UP)
    assert closing.gross_profit == expected == Decimal("332.19")
    assert sim.balance == Decimal("10000") + expected - Decimal("6.00")


async def test_eurgbp_profit_converts_through_gbpusd(sim: Simulator,
                                                     client: WireClient) -> None:
    await _open(client, sim, "EURGBP", "SELL", relativeTakeProfit=100)  # TP 0.84900
    sim.set_price("EURGBP", bid=Decimal("0.84885"), ask=Decimal("0.84900"))
    await sim.wait_for(lambda: not sim.positions())
    closing = sim.deals()[-1]
    # 100 GBP at the GBPUSD mid 1.25005 = 125.005 -> 125.01 (half up).
    assert closing.gross_profit == Decimal("125.01")
    assert closing.balance_after == sim.balance == Decimal("10119.01")


async def test_full_close_sequence(sim: Simulator, client: WireClient) -> None:
    pos = await _open(client, sim)
    got = await trade(client, M.ProtoOAClosePositionReq(
        ctidTraderAccountId=sim.account_id, positionId=pos.positionId, volume=LOT), events=2)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_FILLED"]
    accepted, filled = got
    assert accepted.order.closingOrder and accepted.order.orderType == MODEL.MARKET
    assert accepted.order.timeInForce == MODEL.IMMEDIATE_OR_CANCEL
    assert accepted.order.positionId == pos.positionId
    assert filled.position.positionStatus == MODEL.POSITION_STATUS_CLOSED
    assert filled.deal.executionPrice == 1.10000  # a long closes at the bid
    assert filled.deal.closePositionDetail.grossProfit == -1000  # the spread, 1 lot
    assert not sim.positions()


async def test_partial_close_reduces_volume_and_replaces_the_protection(
        sim: Simulator, client: WireClient) -> None:
    pos = await _open(client, sim, relativeStopLoss=100)
    got = await trade(client, M.ProtoOAClosePositionReq(
        ctidTraderAccountId=sim.account_id, positionId=pos.positionId, volume=LOT // 4 * 2),
        events=3)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_FILLED", "ORDER_REPLACED"]
    assert got[1].position.tradeData.volume == LOT // 2
    assert got[1].position.positionStatus == MODEL.POSITION_STATUS_OPEN
    assert got[1].deal.closePositionDetail.closedVolume == LOT // 2
    assert got[1].deal.closePositionDetail.commission == -300  # half of each side
    assert got[2].isServerEvent and got[2].order.tradeData.volume == LOT // 2
    assert got[2].order.orderType == MODEL.STOP_LOSS_TAKE_PROFIT


async def test_close_errors(sim: Simulator, client: WireClient) -> None:
    pos = await _open(client, sim)
    for volume in (LOT + 100_000, 150_000, 0):
        [error] = await trade(client, M.ProtoOAClosePositionReq(
            ctidTraderAccountId=sim.account_id, positionId=pos.positionId, volume=volume))
        assert error.errorCode == "TRADING_BAD_VOLUME"
    [error] = await trade(client, M.ProtoOAClosePositionReq(
        ctidTraderAccountId=sim.account_id, positionId=42, volume=LOT))
    assert error.DESCRIPTOR.name == "ProtoOAOrderErrorEvent"
    assert error.errorCode == "POSITION_NOT_FOUND" and error.positionId == 42
    assert "Position not found with id 42" in error.description


async def test_amend_position_omitted_level_is_removed(sim: Simulator,
                                                       client: WireClient) -> None:
    pos = await _open(client, sim, relativeStopLoss=100, relativeTakeProfit=100)
    got = await trade(client, M.ProtoOAAmendPositionSLTPReq(
        ctidTraderAccountId=sim.account_id, positionId=pos.positionId, stopLoss=1.09500))
    assert kinds(got) == ["ORDER_REPLACED"] and not got[0].isServerEvent
    assert got[0].position.stopLoss == 1.095 and not got[0].position.HasField("takeProfit")
    assert got[0].order.orderType == MODEL.STOP_LOSS_TAKE_PROFIT
    assert got[0].order.stopPrice == 1.095 and not got[0].order.HasField("limitPrice")
    [view] = sim.positions()
    assert view.take_profit is None
    got = await trade(client, M.ProtoOAAmendPositionSLTPReq(
        ctidTraderAccountId=sim.account_id, positionId=pos.positionId))
    assert kinds(got) == ["ORDER_CANCELLED"]
    assert not sim.orders()
    got = await trade(client, M.ProtoOAAmendPositionSLTPReq(
        ctidTraderAccountId=sim.account_id, positionId=pos.positionId, takeProfit=1.2))
    assert kinds(got) == ["ORDER_ACCEPTED"]
    assert got[0].order.limitPrice == 1.2


async def test_amend_position_wrong_side_is_trading_bad_stops(sim: Simulator,
                                                             client: WireClient) -> None:
    pos = await _open(client, sim)
    for fields in ({"stopLoss": 1.10050}, {"takeProfit": 1.09}):
        [error] = await trade(client, M.ProtoOAAmendPositionSLTPReq(
            ctidTraderAccountId=sim.account_id, positionId=pos.positionId, **fields))
        assert error.errorCode == "TRADING_BAD_STOPS"
    [error] = await trade(client, M.ProtoOAAmendPositionSLTPReq(
        ctidTraderAccountId=sim.account_id, positionId=1, stopLoss=1.0))
    assert error.errorCode == "POSITION_NOT_FOUND"


async def test_trailing_stop_follows_the_price_and_reports_each_move(
        sim: Simulator, client: WireClient) -> None:
    pos = await _open(client, sim, relativeStopLoss=50, trailingStopLoss=True)
    assert sim.positions()[0].stop_loss == Decimal("1.09960")
    start = len(client.inbox)
    sim.set_price("EURUSD", bid=Decimal("1.10100"), ask=Decimal("1.10110"))
    event = await client.wait_named("ProtoOATrailingSLChangedEvent", start=start)
    assert event.positionId == pos.positionId and event.stopPrice == 1.10050
    assert event.orderId == sim.positions()[0].protection_order_id
    sim.set_price("EURUSD", bid=Decimal("1.10060"), ask=Decimal("1.10070"))  # never backwards
    assert sim.positions()[0].stop_loss == Decimal("1.10050")
    sim.set_price("EURUSD", bid=Decimal("1.10040"), ask=Decimal("1.10050"))
    await sim.wait_for(lambda: not sim.positions())
    assert sim.deals()[-1].price == Decimal("1.10040")
    assert len(client.named("ProtoOATrailingSLChangedEvent", start=start)) == 1


async def test_cancel_order(sim: Simulator, client: WireClient) -> None:
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT", limitPrice=1.09))
    order_id = got[0].order.orderId
    got = await trade(client, M.ProtoOACancelOrderReq(ctidTraderAccountId=sim.account_id,
                                                      orderId=order_id))
    assert kinds(got) == ["ORDER_CANCELLED"]
    assert got[0].order.orderStatus == MODEL.ORDER_STATUS_CANCELLED
    [error] = await trade(client, M.ProtoOACancelOrderReq(ctidTraderAccountId=sim.account_id,
                                                          orderId=order_id))
    assert error.DESCRIPTOR.name == "ProtoOAOrderErrorEvent"
    assert error.errorCode == "ORDER_NOT_FOUND" and error.orderId == order_id
    assert error.description == f"Order not found with id {order_id}"


async def test_protection_order_is_changed_through_its_position(sim: Simulator,
                                                                client: WireClient) -> None:
    await _open(client, sim, relativeStopLoss=100)
    [protection] = sim.orders()
    [error] = await trade(client, M.ProtoOACancelOrderReq(
        ctidTraderAccountId=sim.account_id, orderId=protection.order_id))
    assert error.errorCode == "UNABLE_TO_CANCEL_ORDER"
    [error] = await trade(client, M.ProtoOAAmendOrderReq(
        ctidTraderAccountId=sim.account_id, orderId=protection.order_id, stopPrice=1.0))
    assert error.errorCode == "UNABLE_TO_AMEND_ORDER"


async def test_amend_order(sim: Simulator, client: WireClient) -> None:
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT", limitPrice=1.09,
                                        stopLoss=1.08, takeProfit=1.095))
    order_id = got[0].order.orderId
    got = await trade(client, M.ProtoOAAmendOrderReq(
        ctidTraderAccountId=sim.account_id, orderId=order_id, limitPrice=1.0950,
        volume=2 * LOT, stopLoss=1.085))
    assert kinds(got) == ["ORDER_REPLACED"]
    order = got[0].order
    assert (order.limitPrice, order.tradeData.volume, order.stopLoss) == (1.095, 2 * LOT, 1.085)
    assert not order.HasField("takeProfit")  # left out, so removed
    [error] = await trade(client, M.ProtoOAAmendOrderReq(
        ctidTraderAccountId=sim.account_id, orderId=order_id, volume=123))
    assert error.errorCode == "TRADING_BAD_VOLUME"
    [error] = await trade(client, M.ProtoOAAmendOrderReq(
        ctidTraderAccountId=sim.account_id, orderId=order_id, limitPrice=1.08, stopLoss=1.085))
    assert error.errorCode == "TRADING_BAD_STOPS"
    [error] = await trade(client, M.ProtoOAAmendOrderReq(
        ctidTraderAccountId=sim.account_id, orderId=999, limitPrice=1.08))
    assert error.errorCode == "ORDER_NOT_FOUND"
    # Amended into the market: fills at once.
    got = await trade(client, M.ProtoOAAmendOrderReq(
        ctidTraderAccountId=sim.account_id, orderId=order_id, limitPrice=1.10100), events=2)
    assert kinds(got)[:2] == ["ORDER_REPLACED", "ORDER_FILLED"]


async def test_reconcile_lists_positions_pending_and_protective_orders(
        sim: Simulator, client: WireClient) -> None:
    pos = await _open(client, sim, relativeStopLoss=100, relativeTakeProfit=100)
    await trade(client, new_order(sim, "EURUSD", "SELL", LOT, "LIMIT", limitPrice=1.2))
    res = await client.request(M.ProtoOAReconcileReq(ctidTraderAccountId=sim.account_id))
    assert [p.positionId for p in res.position] == [pos.positionId]
    assert res.position[0].usedMargin > 0 and res.position[0].moneyDigits == 2
    assert sorted(MODEL.ProtoOAOrderType.Name(o.orderType) for o in res.order) == [
        "LIMIT", "STOP_LOSS_TAKE_PROFIT"]
    protection = next(o for o in res.order if o.orderType == MODEL.STOP_LOSS_TAKE_PROFIT)
    assert protection.closingOrder and protection.positionId == pos.positionId
    assert (protection.stopPrice, protection.limitPrice) == (1.0991, 1.1011)


async def test_deal_list_by_time_with_max_rows(sim: Simulator, client: WireClient) -> None:
    start = int(time.time() * 1000)
    for _ in range(3):
        await _open(client, sim)
    end = int(time.time() * 1000)
    res = await client.request(M.ProtoOADealListReq(
        ctidTraderAccountId=sim.account_id, fromTimestamp=start, toTimestamp=end))
    assert len(res.deal) == 3 and not res.hasMore
    ids = [d.dealId for d in res.deal]
    assert ids == sorted(ids)
    res = await client.request(M.ProtoOADealListReq(
        ctidTraderAccountId=sim.account_id, fromTimestamp=start, toTimestamp=end, maxRows=2))
    assert [d.dealId for d in res.deal] == ids[:2] and res.hasMore
    res = await client.request(M.ProtoOADealListReq(
        ctidTraderAccountId=sim.account_id, fromTimestamp=0, toTimestamp=start - 1))
    assert not res.deal and not res.hasMore
    res = await client.request(M.ProtoOADealListReq(
        ctidTraderAccountId=sim.account_id, fromTimestamp=end, toTimestamp=start - 1))
    assert res.errorCode == "INCORRECT_BOUNDARIES"


async def test_order_details(sim: Simulator, client: WireClient) -> None:
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT), events=2)
    order_id = got[1].order.orderId
    res = await client.request(M.ProtoOAOrderDetailsReq(ctidTraderAccountId=sim.account_id,
                                                        orderId=order_id))
    assert res.order.orderStatus == MODEL.ORDER_STATUS_FILLED
    assert [d.dealId for d in res.deal] == [got[1].deal.dealId]
    res = await client.request(M.ProtoOAOrderDetailsReq(ctidTraderAccountId=sim.account_id,
                                                        orderId=1))
    assert res.DESCRIPTOR.name == "ProtoOAErrorRes" and res.errorCode == "ORDER_NOT_FOUND"


async def test_unrealized_pnl(sim: Simulator, client: WireClient) -> None:
    pos = await _open(client, sim)
    sim.set_price("EURUSD", bid=Decimal("1.10110"), ask=Decimal("1.10120"))
    res = await client.request(M.ProtoOAGetPositionUnrealizedPnLReq(
        ctidTraderAccountId=sim.account_id))
    [pnl] = res.positionUnrealizedPnL
    assert pnl.positionId == pos.positionId and res.moneyDigits == 2
    assert (pnl.grossUnrealizedPnL, pnl.netUnrealizedPnL) == (10_000, 9_400)


async def test_netted_account_reduces_flips_and_merges_one_position(tmp_path: Path) -> None:
    async with Simulator(seed=9, cert_dir=tmp_path, account_type="netted") as sim:
        sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
        client = await WireClient.connect(sim)
        await client.authorize(sim.credentials)
        first = await _open(client, sim, volume=LOT)
        got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT), events=2)
        assert got[0].position.positionId == first.positionId  # no CREATED position
        [pos] = sim.positions()
        assert pos.volume == 2 * LOT and pos.entry_price == Decimal("1.10010")
        got = await trade(client, new_order(sim, "EURUSD", "SELL", LOT // 2), events=2)
        assert got[1].deal.closePositionDetail.closedVolume == LOT // 2
        [pos] = sim.positions()
        assert (pos.side, pos.volume) == ("BUY", 3 * LOT // 2)
        got = await trade(client, new_order(sim, "EURUSD", "SELL", 2 * LOT), events=2)
        assert got[1].deal.closePositionDetail.closedVolume == 3 * LOT // 2
        [pos] = sim.positions()
        assert (pos.position_id, pos.side, pos.volume) == (first.positionId, "SELL", LOT // 2)
        assert pos.entry_price == Decimal("1.10000")
        got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT // 2), events=2)
        assert got[1].position.positionStatus == MODEL.POSITION_STATUS_CLOSED
        assert not sim.positions()
        await client.close()


async def test_netted_average_entry_is_volume_weighted(tmp_path: Path) -> None:
    async with Simulator(seed=9, cert_dir=tmp_path, account_type="netted") as sim:
        client = await WireClient.connect(sim)
        await client.authorize(sim.credentials)
        sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
        await _open(client, sim, volume=LOT)
        sim.set_price("EURUSD", bid=Decimal("1.10290"), ask=Decimal("1.10300"))
        await _open(client, sim, volume=3 * LOT)
        [pos] = sim.positions()
        assert pos.entry_price == (Decimal("1.10010") + 3 * Decimal("1.10300")) / 4
        await client.close()


async def test_pending_closing_order_is_cancelled_when_its_position_is_gone(
        sim: Simulator, client: WireClient) -> None:
    pos = await _open(client, sim)
    got = await trade(client, new_order(sim, "EURUSD", "SELL", LOT, "LIMIT", limitPrice=1.105,
                                        positionId=pos.positionId))
    assert got[0].order.closingOrder
    await trade(client, M.ProtoOAClosePositionReq(
        ctidTraderAccountId=sim.account_id, positionId=pos.positionId, volume=LOT), events=2)
    start = len(client.inbox)
    sim.set_price("EURUSD", bid=Decimal("1.10600"), ask=Decimal("1.10610"))
    event = await client.wait_named("ProtoOAExecutionEvent", start=start)
    assert kinds([event]) == ["ORDER_CANCELLED"] and event.isServerEvent
    assert not sim.positions() and not sim.orders()

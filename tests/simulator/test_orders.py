"""New orders: market fills, SL/TP, validation, pending types, time in force, rejections."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from pipsync_lite.simulator import Simulator

from .conftest import Connect
from .wire import MODEL, M, WireClient, kinds, new_order, trade

LOT = 10_000_000  # EURUSD volume of one lot


@pytest.fixture(autouse=True)
def eurusd(sim: Simulator) -> None:
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))


async def test_market_buy_with_relative_sl_tp_follows_the_recorded_sequence(
        sim: Simulator, client: WireClient) -> None:
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, relativeStopLoss=100,
                                        relativeTakeProfit=200), events=3)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_FILLED", "ORDER_ACCEPTED"]
    accepted, filled, protection = got
    assert accepted.order.orderType == MODEL.MARKET
    assert accepted.order.orderStatus == MODEL.ORDER_STATUS_ACCEPTED
    assert accepted.order.timeInForce == MODEL.IMMEDIATE_OR_CANCEL
    assert accepted.order.executedVolume == 0
    assert accepted.position.positionStatus == MODEL.POSITION_STATUS_CREATED
    assert accepted.position.tradeData.volume == 0
    assert not accepted.isServerEvent
    position_id = accepted.position.positionId
    assert filled.order.orderStatus == MODEL.ORDER_STATUS_FILLED
    assert filled.order.executionPrice == 1.10010  # buys fill at the ask
    assert filled.order.executedVolume == LOT
    assert filled.position.positionId == position_id
    assert filled.position.positionStatus == MODEL.POSITION_STATUS_OPEN
    assert filled.position.tradeData.volume == LOT and filled.position.price == 1.10010
    deal = filled.deal
    assert (deal.executionPrice, deal.volume, deal.filledVolume) == (1.10010, LOT, LOT)
    assert deal.commission == -300 and deal.moneyDigits == 2  # $3.00 per lot per side
    assert deal.positionId == position_id and deal.orderId == filled.order.orderId
    assert not deal.HasField("closePositionDetail")
    assert protection.isServerEvent
    order = protection.order
    assert order.orderType == MODEL.STOP_LOSS_TAKE_PROFIT and order.orderId != filled.order.orderId
    assert order.tradeData.tradeSide == MODEL.SELL and order.closingOrder
    assert order.timeInForce == MODEL.GOOD_TILL_CANCEL
    assert (order.stopPrice, order.limitPrice) == (1.09910, 1.10210)
    assert (protection.position.stopLoss, protection.position.takeProfit) == (1.09910, 1.10210)
    [pos] = sim.positions()
    assert (pos.stop_loss, pos.take_profit) == (Decimal("1.09910"), Decimal("1.10210"))


async def test_market_sell_fills_at_bid_and_mirrors_relative_levels(
        sim: Simulator, client: WireClient) -> None:
    got = await trade(client, new_order(sim, "USDJPY", "SELL", LOT, relativeStopLoss=12345,
                                        relativeTakeProfit=5000), events=3)
    bid, _ = sim.quote("USDJPY")
    fill = Decimal(str(got[1].order.executionPrice))
    assert fill == bid
    # 0.12345 above the fill, rounded to USDJPY's 3 digits; 0.05 below for the TP.
    assert Decimal(str(got[2].order.stopPrice)) == (fill + Decimal("0.12345")).quantize(
        Decimal("0.001"))
    assert Decimal(str(got[2].order.limitPrice)) == fill - Decimal("0.05")


async def test_label_comment_and_client_order_id_are_kept(sim: Simulator,
                                                          client: WireClient) -> None:
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, label="lbl",
                                        comment="a comment", clientOrderId="cid-1"), events=2)
    for event in got:
        assert event.order.tradeData.label == "lbl"
        assert event.order.tradeData.comment == "a comment"
        assert event.order.clientOrderId == "cid-1"
    assert got[1].position.tradeData.label == "lbl"
    res = await client.request(M.ProtoOAReconcileReq(ctidTraderAccountId=sim.account_id))
    assert res.position[0].tradeData.label == "lbl"
    assert res.position[0].tradeData.comment == "a comment"
    pending = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT",
                                            limitPrice=1.09, clientOrderId="cid-2",
                                            label="p"))
    res = await client.request(M.ProtoOAReconcileReq(ctidTraderAccountId=sim.account_id))
    [order] = [o for o in res.order if o.orderId == pending[0].order.orderId]
    assert order.clientOrderId == "cid-2" and order.tradeData.label == "p"


async def test_absolute_sl_tp_on_market_order_is_invalid_request(sim: Simulator,
                                                                 client: WireClient) -> None:
    [error] = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, stopLoss=1.09))
    assert error.DESCRIPTOR.name == "ProtoOAOrderErrorEvent"
    assert error.errorCode == "INVALID_REQUEST" and error.ctidTraderAccountId == sim.account_id
    assert not sim.positions()


@pytest.mark.parametrize("volume", [50_000, 20_000_000_000, 150_000, 0])
async def test_bad_volumes_are_trading_bad_volume(sim: Simulator, client: WireClient,
                                                  volume: int) -> None:
    [error] = await trade(client, new_order(sim, "EURUSD", "BUY", volume))
    assert error.errorCode == "TRADING_BAD_VOLUME"


async def test_unknown_symbol_is_symbol_not_found(sim: Simulator, client: WireClient) -> None:
    req = new_order(sim, "EURUSD", "BUY", LOT)
    req.symbolId = 777
    [error] = await trade(client, req)
    assert error.errorCode == "SYMBOL_NOT_FOUND"


async def test_price_finer_than_digits_is_trading_bad_prices(sim: Simulator,
                                                            client: WireClient) -> None:
    [error] = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT",
                                            limitPrice=1.090005))
    assert error.errorCode == "TRADING_BAD_PRICES"
    # Binary noise from float arithmetic is not "finer than digits".
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT",
                                        limitPrice=1.09 + 0.00001))
    assert kinds(got) == ["ORDER_ACCEPTED"] and got[0].order.limitPrice == 1.09001


async def test_market_range_fills_inside_the_band_and_cancels_outside(
        sim: Simulator, client: WireClient) -> None:
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "MARKET_RANGE",
                                        baseSlippagePrice=1.10000, slippageInPoints=10),
                      events=2)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_FILLED"]
    assert got[1].order.executionPrice == 1.10010
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "MARKET_RANGE",
                                        baseSlippagePrice=1.10000, slippageInPoints=9),
                      events=2)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_CANCELLED"]
    assert got[1].order.orderStatus == MODEL.ORDER_STATUS_CANCELLED
    assert len(sim.positions()) == 1


async def test_buy_limit_fills_when_ask_crosses_with_absolute_protection(
        sim: Simulator, client: WireClient) -> None:
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT", limitPrice=1.09500,
                                        stopLoss=1.09000, takeProfit=1.10500))
    assert kinds(got) == ["ORDER_ACCEPTED"] and not got[0].HasField("position")
    order_id = got[0].order.orderId
    sim.set_price("EURUSD", bid=Decimal("1.09495"), ask=Decimal("1.09505"))
    assert not sim.positions()
    start = len(client.inbox)
    sim.set_price("EURUSD", bid=Decimal("1.09480"), ask=Decimal("1.09490"))
    filled = await client.wait_named("ProtoOAExecutionEvent", start=start)
    assert filled.executionType == MODEL.ORDER_FILLED and filled.isServerEvent
    assert filled.order.orderId == order_id and filled.order.executionPrice == 1.09490
    assert filled.deal.executionPrice == 1.09490
    protection = await client.wait_named(
        "ProtoOAExecutionEvent", start=start,
        where=lambda e: e.order.orderType == MODEL.STOP_LOSS_TAKE_PROFIT)
    assert protection.executionType == MODEL.ORDER_ACCEPTED and protection.isServerEvent
    assert (protection.order.stopPrice, protection.order.limitPrice) == (1.09, 1.105)


async def test_sell_stop_triggers_on_bid(sim: Simulator, client: WireClient) -> None:
    await trade(client, new_order(sim, "EURUSD", "SELL", LOT, "STOP", stopPrice=1.09900))
    sim.set_price("EURUSD", bid=Decimal("1.09901"), ask=Decimal("1.09990"))
    assert not sim.positions()
    sim.set_price("EURUSD", bid=Decimal("1.09890"), ask=Decimal("1.09900"))
    [pos] = sim.positions()
    assert (pos.side, pos.entry_price) == ("SELL", Decimal("1.09890"))


async def test_buy_stop_limit_fills_only_within_its_slippage(sim: Simulator,
                                                             client: WireClient) -> None:
    await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "STOP_LIMIT", stopPrice=1.10100,
                                  slippageInPoints=5))
    sim.set_price("EURUSD", bid=Decimal("1.10100"), ask=Decimal("1.10110"))  # gapped past
    assert not sim.positions() and sim.orders()[0].order_type == "STOP_LIMIT"
    sim.set_price("EURUSD", bid=Decimal("1.10093"), ask=Decimal("1.10104"))  # back in range
    [pos] = sim.positions()
    assert pos.entry_price == Decimal("1.10104")


async def test_pending_sl_tp_on_the_wrong_side_is_trading_bad_stops(
        sim: Simulator, client: WireClient) -> None:
    [error] = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT",
                                            limitPrice=1.09, stopLoss=1.095))
    assert error.errorCode == "TRADING_BAD_STOPS"
    [error] = await trade(client, new_order(sim, "EURUSD", "SELL", LOT, "LIMIT",
                                            limitPrice=1.11, takeProfit=1.12))
    assert error.errorCode == "TRADING_BAD_STOPS"
    [error] = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, relativeStopLoss=-5))
    assert error.errorCode == "TRADING_BAD_STOPS"


async def test_gtd_order_expires_with_order_expired(sim: Simulator, client: WireClient) -> None:
    expiry = int(time.time() * 1000) + 300
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT", limitPrice=1.09,
                                        timeInForce=MODEL.GOOD_TILL_DATE,
                                        expirationTimestamp=expiry))
    order_id = got[0].order.orderId
    expired = await client.wait_named(
        "ProtoOAExecutionEvent", where=lambda e: e.executionType == MODEL.ORDER_EXPIRED)
    assert expired.order.orderId == order_id and expired.isServerEvent
    assert expired.order.orderStatus == MODEL.ORDER_STATUS_EXPIRED
    assert int(time.time() * 1000) >= expiry
    assert not sim.orders()


async def test_gtd_in_the_past_is_trading_bad_expiration_date(sim: Simulator,
                                                              client: WireClient) -> None:
    [error] = await trade(client, new_order(
        sim, "EURUSD", "BUY", LOT, "LIMIT", limitPrice=1.09, timeInForce=MODEL.GOOD_TILL_DATE,
        expirationTimestamp=int(time.time() * 1000) - 1))
    assert error.errorCode == "TRADING_BAD_EXPIRATION_DATE"


async def test_ioc_and_fok_limits_fill_now_or_are_cancelled(sim: Simulator,
                                                            client: WireClient) -> None:
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT", limitPrice=1.09,
                                        timeInForce=MODEL.IMMEDIATE_OR_CANCEL), events=2)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_CANCELLED"]
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT", limitPrice=1.10050,
                                        timeInForce=MODEL.FILL_OR_KILL), events=2)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_FILLED"]
    assert got[1].order.executionPrice == 1.10010  # better than the limit


async def test_marketable_gtc_limit_fills_at_once(sim: Simulator, client: WireClient) -> None:
    got = await trade(client, new_order(sim, "EURUSD", "SELL", LOT, "LIMIT",
                                        limitPrice=1.09950), events=2)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_FILLED"]
    assert got[1].order.executionPrice == 1.10000


async def test_not_enough_money(tmp_path: Path) -> None:
    async with Simulator(seed=5, cert_dir=tmp_path, balance=Decimal("100")) as sim:
        client = await WireClient.connect(sim)
        await client.authorize(sim.credentials)
        [error] = await trade(client, new_order(sim, "EURUSD", "BUY", 10 * LOT))
        assert error.errorCode == "NOT_ENOUGH_MONEY"
        got = await trade(client, new_order(sim, "EURUSD", "BUY", 100_000), events=2)
        assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_FILLED"]
        await client.close()


async def test_market_closed_refuses_orders_and_freezes_triggers(
        sim: Simulator, client: WireClient) -> None:
    await trade(client, new_order(sim, "EURUSD", "BUY", LOT, "LIMIT", limitPrice=1.09))
    sim.close_market("EURUSD")
    [error] = await trade(client, new_order(sim, "EURUSD", "BUY", LOT))
    assert error.errorCode == "MARKET_CLOSED"
    got = await trade(client, new_order(sim, "GBPUSD", "BUY", LOT), events=2)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_FILLED"]  # other markets trade
    before = sim.quote("EURUSD")
    sim.step(20)
    assert sim.quote("EURUSD") == before  # a closed market does not tick
    sim.set_price("EURUSD", bid=Decimal("1.08000"), ask=Decimal("1.08010"))
    assert [p.symbol for p in sim.positions()] == ["GBPUSD"]
    sim.open_market("EURUSD")  # the crossed limit fills on reopening
    assert sorted(p.symbol for p in sim.positions()) == ["EURUSD", "GBPUSD"]
    sim.close_market()
    [error] = await trade(client, new_order(sim, "GBPUSD", "BUY", LOT))
    assert error.errorCode == "MARKET_CLOSED"
    sim.clear_faults()
    got = await trade(client, new_order(sim, "GBPUSD", "BUY", LOT), events=2)
    assert kinds(got)[-1] == "ORDER_FILLED"


async def test_execution_events_reach_other_sessions_with_the_foreign_client_msg_id(
        sim: Simulator, connect: Connect) -> None:
    client = await connect()
    other = await connect()
    await trade(client, new_order(sim, "EURUSD", "BUY", LOT), events=2)
    seen = await other.wait(lambda m: m.name == "ProtoOAExecutionEvent"
                            and m.message.executionType == MODEL.ORDER_FILLED)
    mine = next(m for m in client.inbox if m.name == "ProtoOAExecutionEvent")
    assert seen.client_msg_id == mine.client_msg_id


async def test_hedged_account_keeps_opposite_positions_and_closes_by_position_id(
        sim: Simulator, client: WireClient) -> None:
    await trade(client, new_order(sim, "EURUSD", "BUY", LOT), events=2)
    await trade(client, new_order(sim, "EURUSD", "SELL", LOT), events=2)
    assert sorted(p.side for p in sim.positions()) == ["BUY", "SELL"]
    buy = next(p for p in sim.positions() if p.side == "BUY")
    got = await trade(client, new_order(sim, "EURUSD", "SELL", LOT // 2,
                                        positionId=buy.position_id), events=2)
    assert got[1].position.positionId == buy.position_id
    assert got[1].deal.closePositionDetail.closedVolume == LOT // 2
    [error] = await trade(client, new_order(sim, "EURUSD", "SELL", 2 * LOT,
                                            positionId=buy.position_id))
    assert error.errorCode == "TRADING_BAD_VOLUME"


async def test_rejection_fault_as_order_error_event(sim: Simulator, client: WireClient) -> None:
    sim.faults.reject_next_order("NOT_ENOUGH_MONEY")
    [error] = await trade(client, new_order(sim, "EURUSD", "BUY", LOT))
    assert error.DESCRIPTOR.name == "ProtoOAOrderErrorEvent"
    assert error.errorCode == "NOT_ENOUGH_MONEY"
    got = await trade(client, new_order(sim, "EURUSD", "BUY", LOT), events=2)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_FILLED"]  # only the next one


async def test_rejection_fault_as_order_rejected_execution_event(
        sim: Simulator, client: WireClient) -> None:
    sim.faults.reject_next_order("TRADING_DISABLED", via="execution")
    [event] = await trade(client, new_order(sim, "EURUSD", "BUY", LOT, clientOrderId="r1"))
    assert kinds([event]) == ["ORDER_REJECTED"]
    assert event.errorCode == "TRADING_DISABLED"
    assert event.order.orderStatus == MODEL.ORDER_STATUS_REJECTED
    assert event.order.clientOrderId == "r1"
    assert sim.order(event.order.orderId).status == "ORDER_STATUS_REJECTED"
    assert not sim.positions()

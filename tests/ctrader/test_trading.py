"""Orders against the simulator: fills, pending orders, closes, amends, cancels, rejections."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from pipsync_lite.ctrader.client import CTraderClient
from pipsync_lite.ctrader.model import (
    BrokerEvent,
    Execution,
    ExecutionKind,
    OrderRequest,
    OrderType,
    Side,
    SymbolInfo,
)
from pipsync_lite.errors import BrokerRejected, BrokerTimeout, BrokerUnavailable
from pipsync_lite.simulator import Simulator

BID, ASK = Decimal("1.10000"), Decimal("1.10010")


@pytest.fixture(autouse=True)
def prices(sim: Simulator) -> None:
    sim.set_price("EURUSD", bid=BID, ask=ASK)


def market(symbol: SymbolInfo, side: Side = Side.BUY, volume: int = 1_000_000, **extra: Any) -> OrderRequest:
    return OrderRequest(symbol_id=symbol.symbol_id, side=side, volume=volume, **extra)


async def open_position(client: CTraderClient, symbol: SymbolInfo, **extra: Any) -> int:
    result = await client.place_order(market(symbol, **extra))
    assert result.position_id is not None
    return result.position_id


async def test_market_order_with_relative_levels_returns_the_filled_position(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    result = await client.place_order(market(
        eurusd, relative_stop_loss=150, relative_take_profit=300,
        label="sig-1", comment="from test", client_order_id="sig-1",
    ))
    assert result.status == "filled"
    assert result.execution_price == ASK
    assert result.filled_volume == 1_000_000
    assert result.deal is not None and result.deal.execution_price == ASK and result.deal.close is None
    position = result.position
    assert position is not None and position.position_id == result.position_id
    assert (position.side, position.volume, position.entry_price) == (Side.BUY, 1_000_000, ASK)
    assert position.stop_loss == Decimal("1.09860") and position.take_profit == Decimal("1.10310")
    assert position.label == "sig-1"
    [at_sim] = sim.positions()
    assert (at_sim.position_id, at_sim.stop_loss, at_sim.take_profit) == (
        position.position_id, position.stop_loss, position.take_profit)
    assert client.positions() == [position]
    assert client.orders() == []  # the protective STOP_LOSS_TAKE_PROFIT order is not a user order
    request = sim.requests_named("ProtoOANewOrderReq")[0].message
    assert (request.relativeStopLoss, request.relativeTakeProfit, request.clientOrderId) == (150, 300, "sig-1")


async def test_a_sell_fills_at_the_bid(client: CTraderClient, eurusd: SymbolInfo) -> None:
    result = await client.place_order(market(eurusd, Side.SELL))
    assert result.execution_price == BID
    assert result.position is not None and result.position.side is Side.SELL


async def test_pending_limit_order_returns_at_accepted(sim: Simulator, client: CTraderClient, eurusd: SymbolInfo) -> None:
    result = await client.place_order(OrderRequest(
        symbol_id=eurusd.symbol_id, side=Side.BUY, volume=200_000, order_type=OrderType.LIMIT,
        limit_price=Decimal("1.09500"), stop_loss=Decimal("1.09000"), take_profit=Decimal("1.10500"),
        client_order_id="sig-2",
    ))
    assert result.status == "accepted" and result.position is None
    order = result.order
    assert order is not None and order.order_id == result.order_id
    assert (order.limit_price, order.stop_loss, order.take_profit) == (
        Decimal("1.09500"), Decimal("1.09000"), Decimal("1.10500"))
    assert client.orders() == [order]
    assert [o.order_id for o in sim.orders() if o.order_type == "LIMIT"] == [order.order_id]


async def test_a_pending_order_that_fills_later_becomes_a_position(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    fills: list[Execution] = []
    client.subscribe(lambda e: fills.append(e) if isinstance(e, Execution) and e.kind is ExecutionKind.FILLED else None)
    result = await client.place_order(OrderRequest(
        symbol_id=eurusd.symbol_id, side=Side.BUY, volume=100_000, order_type=OrderType.LIMIT,
        limit_price=Decimal("1.09900")))
    sim.set_price("EURUSD", bid=Decimal("1.09880"), ask=Decimal("1.09890"))
    await sim.wait_for(lambda: fills, timeout=5)
    assert fills[0].order_id == result.order_id and fills[0].is_server_event
    assert client.orders() == []
    assert [p.volume for p in client.positions()] == [100_000]


async def test_full_close_returns_the_deal_with_its_close_detail(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    position_id = await open_position(client, eurusd)
    sim.set_price("EURUSD", bid=Decimal("1.10110"), ask=Decimal("1.10120"))
    deal = await client.close_position(position_id, 1_000_000)
    assert deal.position_id == position_id and deal.side is Side.SELL
    assert deal.execution_price == Decimal("1.10110")
    assert deal.close is not None
    assert deal.close.closed_volume == 1_000_000
    assert deal.close.entry_price == ASK
    assert deal.close.gross_profit == Decimal("10.00")  # 0.1 lot × 100 points
    assert deal.close.balance == sim.balance
    assert client.account is not None and client.account.balance == sim.balance
    assert client.positions() == [] and sim.positions() == []


async def test_partial_close_reduces_the_position(sim: Simulator, client: CTraderClient, eurusd: SymbolInfo) -> None:
    position_id = await open_position(client, eurusd, relative_stop_loss=200)
    deal = await client.close_position(position_id, 400_000)
    assert deal.close is not None and deal.close.closed_volume == 400_000
    await sim.wait_for(lambda: [p for p in client.positions() if p.volume == 600_000], timeout=5)
    [position] = client.positions()
    assert position.stop_loss == Decimal("1.09810")
    assert [p.volume for p in sim.positions()] == [600_000]


async def test_amend_keeps_both_levels(sim: Simulator, client: CTraderClient, eurusd: SymbolInfo) -> None:
    result = await client.place_order(market(eurusd, relative_stop_loss=150, relative_take_profit=300))
    assert result.position is not None and result.position_id is not None
    position = await client.amend_position_sltp(result.position_id, Decimal("1.09900"), result.position.take_profit)
    assert (position.stop_loss, position.take_profit) == (Decimal("1.09900"), Decimal("1.10310"))
    [at_sim] = sim.positions()
    assert (at_sim.stop_loss, at_sim.take_profit) == (Decimal("1.09900"), Decimal("1.10310"))
    amend = sim.requests_named("ProtoOAAmendPositionSLTPReq")[-1].message
    assert amend.HasField("stopLoss") and amend.HasField("takeProfit")


async def test_amend_with_none_removes_that_level(sim: Simulator, client: CTraderClient, eurusd: SymbolInfo) -> None:
    position_id = await open_position(client, eurusd, relative_stop_loss=150, relative_take_profit=300)
    position = await client.amend_position_sltp(position_id, Decimal("1.09800"), None)
    assert (position.stop_loss, position.take_profit) == (Decimal("1.09800"), None)
    assert sim.positions()[0].take_profit is None


async def test_amend_prices_are_rounded_to_the_symbols_digits(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    position_id = await open_position(client, eurusd)
    position = await client.amend_position_sltp(position_id, Decimal("1.0987654"), None)
    assert position.stop_loss == Decimal("1.09877")


async def test_cancel_removes_the_pending_order(sim: Simulator, client: CTraderClient, eurusd: SymbolInfo) -> None:
    result = await client.place_order(OrderRequest(
        symbol_id=eurusd.symbol_id, side=Side.SELL, volume=100_000, order_type=OrderType.LIMIT,
        limit_price=Decimal("1.11000")))
    await client.cancel_order(result.order_id)
    assert client.orders() == []
    assert sim.order(result.order_id).status == "ORDER_STATUS_CANCELLED"


async def test_amend_order_keeps_what_it_does_not_change(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    result = await client.place_order(OrderRequest(
        symbol_id=eurusd.symbol_id, side=Side.BUY, volume=100_000, order_type=OrderType.LIMIT,
        limit_price=Decimal("1.09000"), stop_loss=Decimal("1.08000"), take_profit=Decimal("1.12000")))
    order = await client.amend_order(result.order_id, limit_price=Decimal("1.09100"))
    assert (order.limit_price, order.stop_loss, order.take_profit) == (
        Decimal("1.09100"), Decimal("1.08000"), Decimal("1.12000"))
    at_sim = sim.order(result.order_id)
    assert (at_sim.limit_price, at_sim.stop_loss, at_sim.take_profit) == (
        Decimal("1.09100"), Decimal("1.08000"), Decimal("1.12000"))


async def test_cancelling_an_unknown_order_is_rejected_with_the_code(client: CTraderClient) -> None:
    with pytest.raises(BrokerRejected) as caught:
        await client.cancel_order(987654)
    assert caught.value.code == "ORDER_NOT_FOUND"


async def test_closing_an_unknown_position_is_rejected_with_the_code(client: CTraderClient) -> None:
    with pytest.raises(BrokerRejected) as caught:
        await client.close_position(424242, 100_000)
    assert caught.value.code == "POSITION_NOT_FOUND"


@pytest.mark.parametrize("via", ["order_error", "execution"])
async def test_a_rejected_order_raises_with_the_servers_code(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo, via: str
) -> None:
    sim.faults.reject_next_order("NOT_ENOUGH_MONEY", via=via)  # type: ignore[arg-type]
    with pytest.raises(BrokerRejected) as caught:
        await client.place_order(market(eurusd))
    assert caught.value.code == "NOT_ENOUGH_MONEY"
    assert client.positions() == []


async def test_a_closed_market_rejects_the_order(sim: Simulator, client: CTraderClient, eurusd: SymbolInfo) -> None:
    sim.close_market("EURUSD")
    with pytest.raises(BrokerRejected) as caught:
        await client.place_order(market(eurusd))
    assert caught.value.code == "MARKET_CLOSED"


async def test_an_unanswered_order_times_out_as_unknown_and_is_not_resent(
    sim: Simulator, make_client: Any
) -> None:
    client = await make_client(request_timeout=0.5)
    assert await client.wait_ready(10)
    symbol = client.symbol("EURUSD")
    sim.faults.swallow("ProtoOANewOrderReq", handle=True)
    with pytest.raises(BrokerTimeout):
        await client.place_order(market(symbol))
    assert len(sim.requests_named("ProtoOANewOrderReq")) == 1
    assert len(sim.positions()) == 1  # it did execute: only reconciliation can tell


async def test_an_order_whose_answer_is_lost_with_the_link_is_unknown(sim: Simulator, client: CTraderClient,
                                                                     eurusd: SymbolInfo) -> None:
    sim.faults.drop_on("ProtoOANewOrderReq", when="after")
    with pytest.raises(BrokerTimeout, match="outcome unknown"):
        await client.place_order(market(eurusd))
    assert len(sim.requests_named("ProtoOANewOrderReq")) == 1


async def test_orders_while_not_ready_are_unavailable(sim: Simulator, make_client: Any) -> None:
    client = await make_client(client_secret="wrong", auth_failure_backoff=300.0)
    with pytest.raises(BrokerUnavailable):
        await client.place_order(OrderRequest(symbol_id=1, side=Side.BUY, volume=100_000))
    assert not sim.requests_named("ProtoOANewOrderReq")


async def test_the_order_reaches_the_server_without_added_latency(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    """Loose bound (timed asserts are flaky); the package's queue took ~1 s here."""
    started = time.monotonic()
    await client.place_order(market(eurusd))
    arrived = sim.requests_named("ProtoOANewOrderReq")[0].monotonic
    assert arrived - started < 0.2


async def test_server_side_stop_loss_hit_is_reported_and_applied(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    events: list[BrokerEvent] = []
    client.subscribe(events.append)
    position_id = await open_position(client, eurusd, relative_stop_loss=100)
    sim.set_price("EURUSD", bid=Decimal("1.09900"), ask=Decimal("1.09910"))

    def closed() -> list[Execution]:
        return [e for e in events if isinstance(e, Execution) and e.position_closed]

    [close] = await sim.wait_for(closed, timeout=5)
    assert close.is_server_event and close.is_protective and close.position_id == position_id
    assert close.deal is not None and close.deal.close is not None
    assert client.positions() == []
    assert client.account is not None and client.account.balance == sim.balance
    kinds = [e.kind for e in events if isinstance(e, Execution)]
    assert kinds[:3] == [ExecutionKind.ACCEPTED, ExecutionKind.FILLED, ExecutionKind.ACCEPTED]


async def test_reconcile_deal_list_and_unrealized_pnl(sim: Simulator, client: CTraderClient, eurusd: SymbolInfo) -> None:
    started_ms = int(time.time() * 1000) - 1000
    first = await open_position(client, eurusd)
    second = await open_position(client, eurusd, side=Side.SELL)
    await client.close_position(first, 1_000_000)
    snapshot = await client.reconcile()
    assert [p.position_id for p in snapshot.positions] == [second]
    deals = await client.deal_list(started_ms, int(time.time() * 1000) + 1000, max_rows=1)
    assert [d.deal_id for d in deals] == [d.deal_id for d in sim.deals()]
    assert len(deals) == 3 and deals[-1].close is not None
    assert len(sim.requests_named("ProtoOADealListReq")) >= 3  # paged by one row
    fortnight = 15 * 24 * 3600 * 1000  # more than the API's one-week window: asked week by week
    asked = len(sim.requests_named("ProtoOADealListReq"))
    wide = await client.deal_list(started_ms - fortnight, int(time.time() * 1000) + 1000)
    assert wide == deals
    assert len(sim.requests_named("ProtoOADealListReq")) - asked == 3
    pnl = await client.unrealized_pnl()
    assert [p.position_id for p in pnl] == [second]


async def test_quotes_keep_the_side_an_event_omits(sim: Simulator, client: CTraderClient, eurusd: SymbolInfo) -> None:
    await client.subscribe_quotes([eurusd.symbol_id])
    await sim.wait_for(lambda: client.quote(eurusd.symbol_id), timeout=5)
    sim.set_price("EURUSD", bid=Decimal("1.10002"))
    await sim.wait_for(lambda: (q := client.quote(eurusd.symbol_id)) and q.bid == Decimal("1.10002"), timeout=5)
    quote = client.quote(eurusd.symbol_id)
    assert quote is not None and quote.ask == ASK
    assert client.snapshot().quotes[eurusd.symbol_id] == quote

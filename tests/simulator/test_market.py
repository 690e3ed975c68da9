"""Market data: symbols, assets, categories, spot subscriptions, the trader and the feed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pipsync_lite.simulator import Simulator

from .wire import MODEL, M, WireClient

EXPECTED = {  # name: (digits, pipPosition)
    "EURUSD": (5, 4), "GBPUSD": (5, 4), "USDJPY": (3, 2), "EURGBP": (5, 4),
    "EURJPY": (3, 2), "XAUUSD": (2, 1), "US500": (2, 0), "BTCUSD": (2, 0),
}


async def _symbols(client: WireClient, sim: Simulator) -> dict[str, object]:
    res = await client.request(M.ProtoOASymbolsListReq(ctidTraderAccountId=sim.account_id))
    return {s.symbolName: s for s in res.symbol}


async def test_symbols_list_has_the_catalogue_with_assets(sim: Simulator,
                                                          client: WireClient) -> None:
    symbols = await _symbols(client, sim)
    assert set(EXPECTED) <= set(symbols)
    assets = await client.request(M.ProtoOAAssetListReq(ctidTraderAccountId=sim.account_id))
    names = {a.assetId: a.name for a in assets.asset}
    assert {"USD", "EUR", "GBP", "JPY", "XAU", "BTC", "US500"} <= set(names.values())
    eurgbp = symbols["EURGBP"]
    assert (names[eurgbp.baseAssetId], names[eurgbp.quoteAssetId]) == ("EUR", "GBP")
    assert all(s.enabled for s in symbols.values())


async def test_symbol_by_id_carries_recorded_eurusd_metadata(sim: Simulator,
                                                             client: WireClient) -> None:
    symbols = await _symbols(client, sim)
    ids = [symbols[n].symbolId for n in EXPECTED]
    res = await client.request(M.ProtoOASymbolByIdReq(
        ctidTraderAccountId=sim.account_id, symbolId=ids))
    by_id = {s.symbolId: s for s in res.symbol}
    for name, (digits, pip) in EXPECTED.items():
        full = by_id[symbols[name].symbolId]
        assert (full.digits, full.pipPosition) == (digits, pip), name
        assert full.minVolume <= full.maxVolume and full.minVolume % full.stepVolume == 0
    eurusd = by_id[symbols["EURUSD"].symbolId]
    assert (eurusd.lotSize, eurusd.minVolume, eurusd.stepVolume, eurusd.maxVolume) == (
        10_000_000, 100_000, 100_000, 10_000_000_000)
    assert eurusd.schedule[0].startSecond == 0 and eurusd.schedule[0].endSecond == 604800


async def test_symbol_by_id_unknown_is_symbol_not_found(sim: Simulator,
                                                        client: WireClient) -> None:
    res = await client.request(M.ProtoOASymbolByIdReq(
        ctidTraderAccountId=sim.account_id, symbolId=[1, 999999]))
    assert res.errorCode == "SYMBOL_NOT_FOUND"


async def test_symbol_categories(sim: Simulator, client: WireClient) -> None:
    res = await client.request(M.ProtoOASymbolCategoryListReq(
        ctidTraderAccountId=sim.account_id))
    assert {c.name for c in res.symbolCategory} >= {"Forex Majors", "Crypto"}


async def test_trader_reports_balance_leverage_and_hedged(sim: Simulator,
                                                          client: WireClient) -> None:
    res = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=sim.account_id))
    trader = res.trader
    assert trader.balance == 1_000_000 and trader.moneyDigits == 2
    assert trader.leverageInCents == 10_000
    assert trader.accountType == MODEL.HEDGED
    assets = await client.request(M.ProtoOAAssetListReq(ctidTraderAccountId=sim.account_id))
    assert {a.assetId: a.name for a in assets.asset}[trader.depositAssetId] == "USD"
    assert sim.balance == Decimal("10000.00")


async def test_trader_reports_netted(tmp_path: Path) -> None:
    async with Simulator(seed=2, cert_dir=tmp_path, account_type="netted") as sim:
        client = await WireClient.connect(sim)
        await client.authorize(sim.credentials)
        res = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=sim.account_id))
        assert res.trader.accountType == MODEL.NETTED
        await client.close()


async def test_subscribe_spots_answers_then_sends_both_sides_then_updates(
        sim: Simulator, client: WireClient) -> None:
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    got = await client.request_all(
        M.ProtoOASubscribeSpotsReq(ctidTraderAccountId=sim.account_id, symbolId=[1],
                                   subscribeToSpotTimestamp=True),
        until=lambda ms: len(ms) >= 2)
    assert [m.DESCRIPTOR.name for m in got] == ["ProtoOASubscribeSpotsRes", "ProtoOASpotEvent"]
    first = got[1]
    assert (first.bid, first.ask, first.symbolId) == (110000, 110010, 1)
    assert first.timestamp > 0
    start = len(client.inbox)
    sim.set_price("EURUSD", bid=Decimal("1.10002"))
    only_bid = await client.wait_named("ProtoOASpotEvent", start=start)
    assert only_bid.bid == 110002 and not only_bid.HasField("ask")
    start = len(client.inbox)
    sim.set_price("EURUSD", ask=Decimal("1.10020"))
    only_ask = await client.wait_named("ProtoOASpotEvent", start=start)
    assert only_ask.ask == 110020 and not only_ask.HasField("bid")


async def test_spot_prices_are_in_hundred_thousandths_for_three_digit_symbols(
        sim: Simulator, client: WireClient) -> None:
    sim.set_price("USDJPY", bid=Decimal("151.123"), ask=Decimal("151.135"))
    got = await client.request_all(
        M.ProtoOASubscribeSpotsReq(ctidTraderAccountId=sim.account_id, symbolId=[4]),
        until=lambda ms: len(ms) >= 2)
    assert (got[1].bid, got[1].ask) == (15112300, 15113500)
    assert not got[1].HasField("timestamp")


async def test_repeat_subscription_is_already_subscribed_and_unsubscribe_stops(
        sim: Simulator, client: WireClient) -> None:
    req = M.ProtoOASubscribeSpotsReq(ctidTraderAccountId=sim.account_id, symbolId=[1])
    await client.request_all(req, until=lambda ms: len(ms) >= 2)
    assert (await client.request(req)).errorCode == "ALREADY_SUBSCRIBED"
    res = await client.request(M.ProtoOAUnsubscribeSpotsReq(
        ctidTraderAccountId=sim.account_id, symbolId=[1]))
    assert res.DESCRIPTOR.name == "ProtoOAUnsubscribeSpotsRes"
    res = await client.request(M.ProtoOAUnsubscribeSpotsReq(
        ctidTraderAccountId=sim.account_id, symbolId=[1]))
    assert res.errorCode == "NOT_SUBSCRIBED_TO_SPOTS"
    count = len(client.named("ProtoOASpotEvent"))
    sim.set_price("EURUSD", bid=Decimal("1.20000"), ask=Decimal("1.20010"))
    await client.request(M.ProtoOAVersionReq())  # a round trip after the price change
    assert len(client.named("ProtoOASpotEvent")) == count


async def test_subscribe_unknown_symbol_is_symbol_not_found(sim: Simulator,
                                                            client: WireClient) -> None:
    res = await client.request(M.ProtoOASubscribeSpotsReq(
        ctidTraderAccountId=sim.account_id, symbolId=[424242]))
    assert res.errorCode == "SYMBOL_NOT_FOUND"


async def test_step_moves_prices_with_one_sided_updates(sim: Simulator,
                                                        client: WireClient) -> None:
    await client.request_all(
        M.ProtoOASubscribeSpotsReq(ctidTraderAccountId=sim.account_id, symbolId=[1]),
        until=lambda ms: len(ms) >= 2)
    start = len(client.inbox)
    sim.step(60)
    await client.request(M.ProtoOAVersionReq())
    events = client.named("ProtoOASpotEvent", start=start)
    assert len(events) > 20
    assert any(e.HasField("bid") and not e.HasField("ask") for e in events)
    assert any(e.HasField("ask") and not e.HasField("bid") for e in events)
    bid, ask = sim.quote("EURUSD")
    assert bid < ask


async def test_automatic_ticks_when_tick_interval_is_set(tmp_path: Path) -> None:
    async with Simulator(seed=4, cert_dir=tmp_path, tick_interval=0.01) as sim:
        start = sim.quote("EURUSD")
        await sim.wait_for(lambda: sim.quote("EURUSD") != start)


def test_set_price_rejects_off_grid_and_crossed_prices() -> None:
    sim = Simulator(seed=1)
    with pytest.raises(ValueError):
        sim.set_price("EURUSD", bid=Decimal("1.100001"))
    with pytest.raises(ValueError):
        sim.set_price("EURUSD", bid=Decimal("1.2"), ask=Decimal("1.1"))
    sim.set_price("EURUSD", bid="1.1", ask="1.10012")
    assert sim.quote("EURUSD") == (Decimal("1.10000"), Decimal("1.10012"))

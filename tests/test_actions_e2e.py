"""End to end, every action beyond buy/sell, on a hedged and on a netted account.

Partial closes, close_long/close_short, close_all and FLATTEN, reverse (and its race),
flatten_first, netting, cancel, modify and breakeven: each alert goes over HTTP to the
daemon, which trades the simulator over TLS; the assertions read the simulator's book.
"""

from __future__ import annotations

from decimal import Decimal

import aiohttp

from pipsync_lite.app import Daemon
from pipsync_lite.simulator import Simulator

from .alerts import BOTH, LOT, NETTED, execute, holdings, pending, refused, send
from .conftest import StartDaemon, eventually
from .test_webhook_e2e import settled

D = Decimal


# -- close with a size, by side, account-wide ---------------------------------------------------


@BOTH
async def test_close_lots_takes_the_largest_position_first(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    for lots in ("0.1", "0.3", "0.2"):
        await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": lots})
    before = {p.position_id: p.volume for p in sim.positions()}
    answer = await execute(http, daemon, {"action": "close", "symbol": "EURUSD", "lots": "0.4"})
    assert answer["lots"] == "0.4"
    assert sum(v for _, v in holdings(sim)) == 2 * LOT // 10  # 0.6 - 0.4
    closes = [(r.message.positionId, r.message.volume) for r in sim.requests_named("ProtoOAClosePositionReq")]
    if sim.account.account_type.value == "hedged":
        largest, middle = sorted(before, key=before.__getitem__)[2], sorted(before, key=before.__getitem__)[1]
        assert closes == [(largest, 3 * LOT // 10), (middle, LOT // 10)]
        assert sorted(v for _, v in holdings(sim)) == [LOT // 10, LOT // 10]
    else:  # one position of 0.6, reduced once
        assert closes == [(next(iter(before)), 4 * LOT // 10)]


@BOTH
async def test_close_percent_closes_that_share_of_each_position(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.2"})
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.3"})
    await execute(http, daemon, "action=close; symbol=EURUSD; percent=50")
    volumes = sorted(v for _, v in holdings(sim))
    hedged = sim.account.account_type.value == "hedged"
    assert volumes == ([1_000_000, 1_500_000] if hedged else [2_500_000])


async def test_close_more_lots_than_open_closes_all_with_a_note(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})
    answer = await execute(http, daemon, {"action": "close", "symbol": "EURUSD", "lots": "1"})
    assert sim.positions() == []
    assert answer["notes"] == ["asked to close 1 lots, but 0.1 lots are open on EURUSD: closing all of them"]


async def test_close_long_and_close_short_keep_the_other_side(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.2"})
    await execute(http, daemon, {"action": "close_long", "symbol": "EURUSD"})
    assert holdings(sim) == [("SELL", 2 * LOT // 10)]
    answer = await refused(http, daemon, sim, {"action": "close_long", "symbol": "EURUSD"}, 422)
    assert (answer["rule"], answer["detail"]) == ("nothing_to_close", "no open long position on EURUSD")
    await execute(http, daemon, {"action": "close_short", "symbol": "EURUSD", "lots": "0.05"})
    assert holdings(sim) == [("SELL", 15 * LOT // 100)]


@BOTH
async def test_close_all_is_symbol_wide_with_a_symbol_and_account_wide_without(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})
    await execute(http, daemon, {"action": "sell", "symbol": "GBPUSD", "lots": "0.1"})
    await execute(http, daemon, {"action": "buy", "symbol": "USDJPY", "lots": "0.1"})
    await execute(http, daemon, {"action": "close_all", "symbol": "GBPUSD"})
    assert sorted(p.symbol for p in sim.positions()) == ["EURUSD", "USDJPY"]
    answer = await execute(http, daemon, {"action": "close_all"})
    assert answer["lots"] == "0.2" and sim.positions() == []
    answer = await refused(http, daemon, sim, {"action": "close_all"}, 422)
    assert (answer["rule"], answer["detail"]) == ("nothing_to_close", "no open position on the account")


@BOTH
async def test_flatten_cancels_the_instruments_orders_then_closes_its_positions(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": "1.09"})
    await execute(http, daemon, {"action": "buy", "symbol": "GBPUSD", "price": "1.01"})
    await execute(http, daemon, {"action": "buy", "symbol": "GBPUSD", "lots": "0.1"})
    await execute(http, daemon, "command=FLATTEN; instrument=EURUSD; account=Sim101;")
    assert [p.symbol for p in sim.positions()] == ["GBPUSD"]
    assert [o.symbol for o in pending(sim)] == ["GBPUSD"]
    names = [r.name for r in sim.requests if r.name in ("ProtoOACancelOrderReq", "ProtoOAClosePositionReq")]
    assert names == ["ProtoOACancelOrderReq", "ProtoOAClosePositionReq"]  # no order fills meanwhile
    await execute(http, daemon, "command=FLATTENEVERYTHING;")
    assert sim.positions() == [] and pending(sim) == []


async def test_flatten_with_only_pending_orders_cancels_them(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "price": "1.2"})
    await execute(http, daemon, "command=FLATTEN; instrument=EURUSD;")
    assert pending(sim) == []
    answer = await refused(http, daemon, sim, "command=FLATTEN; instrument=EURUSD;", 422)
    assert answer["detail"] == "no open position or pending order on EURUSD"


# -- reverse -----------------------------------------------------------------------------------------


@BOTH
async def test_reverse_closes_then_opens_the_other_side_with_the_closed_volume(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.3"})
    [long] = sim.positions()
    answer = await execute(http, daemon, {"action": "reverse", "symbol": "EURUSD"})
    assert answer["lots"] == "0.3"
    [short] = sim.positions()
    assert (short.side, short.volume) == ("SELL", 3 * LOT // 10)
    [close] = sim.requests_named("ProtoOAClosePositionReq")
    assert (close.message.positionId, close.message.volume) == (long.position_id, long.volume)
    purposes = [o["purpose"] for o in await daemon.store.orders_for(answer["signal_id"])]
    assert purposes == ["close", "entry"]


@BOTH
async def test_reverse_with_lots_and_a_stop(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.2"})
    await execute(http, daemon, "command=REVERSE; instrument=EURUSD; qty=0.5; sl_pips=20")
    [position] = sim.positions()
    assert (position.side, position.volume) == ("BUY", LOT // 2)
    assert position.stop_loss == position.entry_price - D("0.00200")


async def test_reverse_on_hedged_positions_uses_their_net_direction(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.3"})
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.1"})
    await execute(http, daemon, {"action": "reverse", "symbol": "EURUSD"})
    assert holdings(sim) == [("SELL", 2 * LOT // 10)]  # net long 0.2 → short 0.2
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.2"})
    answer = await refused(http, daemon, sim, {"action": "reverse", "symbol": "EURUSD"}, 422)
    assert answer["rule"] == "nothing_to_reverse" and "net to zero" in answer["detail"]


@BOTH
async def test_reverse_while_flat_is_422(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    answer = await refused(http, daemon, sim, {"action": "reverse", "symbol": "EURUSD"}, 422)
    assert (answer["rule"], answer["detail"]) == ("nothing_to_reverse", "no open position on EURUSD to reverse")
    row = await daemon.store.signal(answer["signal_id"])
    assert (row["status"], row["rule"]) == ("rejected", "nothing_to_reverse")


@BOTH
async def test_reverse_sends_the_entry_only_after_the_close_filled(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """Race-free: the entry's NewOrderReq reaches the broker only after the close's fill event."""
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})
    # 1. The close fills at once but its fill event reaches the daemon 0.3 s later.
    sim.faults.delay("ProtoOAClosePositionReq", 0.3, times=1, handle="now")
    await execute(http, daemon, {"action": "reverse", "symbol": "EURUSD"})
    [close] = sim.requests_named("ProtoOAClosePositionReq")
    entry = sim.requests_named("ProtoOANewOrderReq")[-1]
    assert entry.monotonic >= close.monotonic + 0.3
    # 2. The close reaches the broker 0.3 s late and only then fills.
    sim.faults.delay("ProtoOAClosePositionReq", 0.3, times=1, handle="late")
    await execute(http, daemon, {"action": "reverse", "symbol": "EURUSD"})
    [*_, closing_deal] = [d for d in sim.deals() if d.closed_volume]
    entry = sim.requests_named("ProtoOANewOrderReq")[-1]
    assert entry.wall * 1000 >= closing_deal.executed_ms
    assert holdings(sim) == [("BUY", LOT // 10)]


@BOTH
async def test_reverse_whose_close_fails_sends_no_entry(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})
    failed: list[dict[str, object]] = []
    daemon.events.subscribe(lambda event: failed.append(event.data) if event.type == "order.failed" else None)
    sim.close_market("EURUSD")
    status, answer = await send(http, daemon, {"action": "reverse", "symbol": "EURUSD"})
    assert status == 202
    row = await settled(daemon, answer["signal_id"])
    assert row["status"] == "failed" and "MARKET_CLOSED" in row["reason"]
    assert len(sim.requests_named("ProtoOANewOrderReq")) == 1  # only the first buy
    [order] = await daemon.store.orders_for(answer["signal_id"])
    assert (order["purpose"], order["status"], order["error_code"]) == ("close", "rejected", "MARKET_CLOSED")
    assert [(f["purpose"], f["error_code"]) for f in failed] == [("close", "MARKET_CLOSED")]
    assert holdings(sim) == [("BUY", LOT // 10)]


async def test_a_failed_close_does_not_stop_the_others(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})
    await execute(http, daemon, {"action": "buy", "symbol": "GBPUSD", "lots": "0.1"})
    sim.close_market("EURUSD")
    status, answer = await send(http, daemon, {"action": "close_all"})
    row = await settled(daemon, answer["signal_id"])
    assert row["status"] == "failed" and "MARKET_CLOSED" in row["reason"]
    assert [p.symbol for p in sim.positions()] == ["EURUSD"]
    statuses = [(o["symbol"], o["status"]) for o in await daemon.store.orders_for(answer["signal_id"])]
    assert statuses == [("EURUSD", "rejected"), ("GBPUSD", "filled")]


# -- flatten_first and netting -------------------------------------------------------------------------


@BOTH
async def test_flatten_first_closes_the_other_side_and_waits_for_its_fill(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.2"})
    sim.faults.delay("ProtoOAClosePositionReq", 0.2, times=1, handle="now")
    answer = await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1", "flatten_first": True})
    assert holdings(sim) == [("BUY", LOT // 10)]  # netted alone would have left a short 0.1
    [close] = sim.requests_named("ProtoOAClosePositionReq")
    assert sim.requests_named("ProtoOANewOrderReq")[-1].monotonic >= close.monotonic + 0.2
    assert any("flatten_first" in note for note in answer["notes"])


async def test_flatten_first_default_from_yaml_and_the_alert_wins(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon(risk={"flatten_first": True})
    await execute(http, daemon, "command=PLACE; action=SELL; instrument=EURUSD; qty=0.1")
    await execute(http, daemon, "command=PLACE; action=BUY; instrument=EURUSD; qty=0.1")
    assert holdings(sim) == [("BUY", LOT // 10)]
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.1", "flatten_first": False})
    assert holdings(sim) == [("BUY", LOT // 10), ("SELL", LOT // 10)]  # hedged


@BOTH
async def test_flatplace_is_flatten_first(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})
    await execute(http, daemon, "command=FLATPLACE; action=SELL; instrument=EURUSD; qty=0.3; order_type=MARKET; tif=DAY")
    assert holdings(sim) == [("SELL", 3 * LOT // 10)]


@NETTED
async def test_netted_sell_against_a_long_reduces_it(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.3"})
    answer = await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.1", "sl_pips": 10})
    assert holdings(sim) == [("BUY", 2 * LOT // 10)]
    assert len(sim.requests_named("ProtoOANewOrderReq")) == 1  # reduced by a close, not a new order
    assert answer["notes"] == [
        "netted account: the sell reduces the long position by 0.1 of 0.3 lots",
        "sl/tp not applied: the order only reduces the existing position",
    ]


@NETTED
async def test_netted_sell_beyond_the_long_turns_it_short_with_its_stop(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.3", "sl_pips": 10})
    [position] = sim.positions()
    assert (position.side, position.volume) == ("SELL", 2 * LOT // 10)
    assert position.stop_loss == position.entry_price + D("0.00100")
    names = [r.name for r in sim.requests if r.name in ("ProtoOAClosePositionReq", "ProtoOANewOrderReq")]
    assert names[-2:] == ["ProtoOAClosePositionReq", "ProtoOANewOrderReq"]


async def test_hedged_sell_against_a_long_opens_a_hedge(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.3"})
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.1"})
    assert holdings(sim) == [("BUY", 3 * LOT // 10), ("SELL", LOT // 10)]


# -- cancel ---------------------------------------------------------------------------------------------


@BOTH
async def test_cancel_takes_the_symbols_pending_orders(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": "1.09"})
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "price": "1.11"})
    await execute(http, daemon, {"action": "buy", "symbol": "GBPUSD", "price": "1.01"})
    await execute(http, daemon, "command=CANCELORDERS; instrument=EURUSD;")
    assert [o.symbol for o in pending(sim)] == ["GBPUSD"]
    answer = await refused(http, daemon, sim, {"action": "cancel", "symbol": "EURUSD"}, 422)
    assert (answer["rule"], answer["detail"]) == ("nothing_to_cancel", "no pending order on EURUSD")
    await execute(http, daemon, {"action": "cancel_all"})
    assert pending(sim) == []


async def test_cancel_one_order_by_id_and_by_side(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    for body in ({"action": "buy", "symbol": "EURUSD", "price": "1.09"},
                 {"action": "buy", "symbol": "EURUSD", "price": "1.08"},
                 {"action": "sell", "symbol": "EURUSD", "price": "1.11"}):
        await execute(http, daemon, body)
    first, second, sell = pending(sim)
    await execute(http, daemon, {"action": "cancel", "order_id": first.order_id})
    assert [o.order_id for o in pending(sim)] == [second.order_id, sell.order_id]
    await execute(http, daemon, "60123456789,cancellong,EURUSD")
    assert [o.order_id for o in pending(sim)] == [sell.order_id]
    answer = await refused(http, daemon, sim, {"action": "cancel", "order_id": first.order_id}, 422)
    assert (answer["rule"], answer["detail"]) == ("unknown_order", f"no pending order {first.order_id}")
    answer = await refused(http, daemon, sim, {"action": "cancel", "symbol": "GBPUSD", "order_id": sell.order_id}, 422)
    assert answer["detail"] == f"no pending order {sell.order_id} on GBPUSD"


# -- modify ---------------------------------------------------------------------------------------------


@BOTH
async def test_modify_sl_keeps_the_take_profit(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "sl": "1.095", "tp": "1.11"})
    await execute(http, daemon, {"action": "modify", "symbol": "EURUSD", "sl": "1.097"})
    [position] = sim.positions()
    assert (position.stop_loss, position.take_profit) == (D("1.09700"), D("1.11000"))
    amend = sim.requests_named("ProtoOAAmendPositionSLTPReq")[-1].message
    assert amend.HasField("takeProfit")  # resent: cTrader drops a level an amend leaves out
    await execute(http, daemon, "command=CHANGE; instrument=EURUSD; tp_pips=50")
    [position] = sim.positions()  # pips from the entry price
    assert (position.stop_loss, position.take_profit) == (D("1.09700"), position.entry_price + D("0.00500"))


async def test_modify_trailing_on_and_off_keeps_the_levels(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "sl_pips": 20, "tp_pips": 40})
    await execute(http, daemon, {"action": "modify", "symbol": "EURUSD", "trailing": True})
    [position] = sim.positions()
    assert position.trailing and position.stop_loss == position.entry_price - D("0.00200")
    sim.set_price("EURUSD", bid=D("1.10100"), ask=D("1.10110"))  # the stop trails 10 points up
    trailed = position.stop_loss + D("0.00100")
    await eventually(lambda: sim.positions()[0].stop_loss == trailed)
    await eventually(lambda: daemon.broker.positions()[0].stop_loss == trailed)
    await execute(http, daemon, {"action": "modify", "symbol": "EURUSD", "trailing": False})
    [position] = sim.positions()
    assert not position.trailing and position.stop_loss == trailed and position.take_profit is not None


async def test_modify_moves_a_pending_order_and_keeps_its_levels(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": "1.09", "sl": "1.085", "tp": "1.095"})
    [order] = pending(sim)
    await execute(http, daemon, f"command=CHANGE; instrument=EURUSD; order_id={order.order_id}; limit_price=1.0910")
    [order] = pending(sim)
    assert (order.limit_price, order.stop_loss, order.take_profit) == (D("1.09100"), D("1.08500"), D("1.09500"))
    await execute(http, daemon, {"action": "modify", "symbol": "EURUSD", "sl_pips": 10})  # no position: its order
    [order] = pending(sim)
    assert (order.limit_price, order.stop_loss, order.take_profit) == (D("1.09100"), D("1.09000"), D("1.09500"))
    answer = await refused(http, daemon, sim, {"action": "modify", "symbol": "EURUSD", "price": "1.0960"}, 400)
    assert answer["field"] == "price" and "take profit 1.09500 must be above the new price" in answer["detail"]


async def test_modify_refusals(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    answer = await refused(http, daemon, sim, {"action": "modify", "symbol": "EURUSD", "sl": "1.09"}, 422)
    assert (answer["rule"], answer["detail"]) == ("nothing_to_modify", "no open position or pending order on EURUSD")
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": "1.09"})
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": "1.08"})
    answer = await refused(http, daemon, sim, {"action": "modify", "symbol": "EURUSD", "price": "1.07"}, 422)
    assert answer["rule"] == "ambiguous_order" and "give order_id" in answer["detail"]
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    answer = await refused(http, daemon, sim, {"action": "modify", "symbol": "EURUSD", "sl": "1.1005"}, 400)
    assert (answer["field"], answer["detail"]) == ("sl", "sl: stop loss 1.10050 must be below the current bid 1.10000 for a buy")


# -- breakeven ----------------------------------------------------------------------------------------


@BOTH
async def test_breakeven_moves_the_stop_to_entry_plus_offset(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1", "sl_pips": 20, "tp_pips": 80})
    [position] = sim.positions()
    answer = await refused(http, daemon, sim, {"action": "breakeven", "symbol": "EURUSD"}, 422)
    assert answer["rule"] == "breakeven" and "not below the current bid 1.10000" in answer["detail"]
    sim.set_price("EURUSD", bid=D("1.10100"), ask=D("1.10110"))
    await execute(http, daemon, {"action": "breakeven", "symbol": "EURUSD", "offset_pips": 2})
    [moved] = sim.positions()
    assert moved.stop_loss == position.entry_price + D("0.00020")
    assert moved.take_profit == position.take_profit
    answer = await refused(http, daemon, sim, {"action": "breakeven", "symbol": "EURUSD"}, 422)
    assert "already at or past" in answer["detail"]  # breakeven never loosens a stop


async def test_breakeven_of_a_short_is_entry_minus_offset(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.1"})
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})  # hedged: a long too
    sim.set_price("EURUSD", bid=D("1.09800"), ask=D("1.09810"))
    answer = await execute(http, daemon, {"action": "breakeven", "symbol": "EURUSD", "offset_pips": "1.5"})
    short, long = sim.positions()
    assert short.stop_loss == D("1.10000") - D("0.00015") and long.stop_loss is None
    assert answer["notes"] == [
        f"not moved: position {long.position_id}: the broker would refuse a stop at 1.10025, "
        "which is not below the current bid 1.09800"
    ]


async def test_pineconnector_and_tradingview_exits(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await execute(http, daemon, "60123456789,buy,EURUSD,risk=0.2")
    await execute(http, daemon, "60123456789,sell,EURUSD,risk=0.1")
    await execute(http, daemon, "60123456789,closeshort,EURUSD")
    assert holdings(sim) == [("BUY", 2 * LOT // 10)]
    # A strategy scaling out: sell 0.05 leaving long → a partial close of the long.
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.05", "market_position": "long"})
    assert holdings(sim) == [("BUY", 15 * LOT // 100)]
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.15", "market_position": "flat"})
    assert holdings(sim) == []
    status, answer = await send(http, daemon, "60123456789,closeall,EURUSD")
    assert (status, answer["rule"]) == (422, "nothing_to_close")


async def test_tradingview_one_order_reversal_on_a_hedged_account(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    """The README's caveat: long 1 → short 1 arrives as one `sell 2`; flatten_first with the new size fixes it."""
    template = ('{{"action": "{action}", "symbol": "EURUSD", "lots": "{size}", '
                '"market_position": "{position}", "flatten_first": true}}')
    await execute(http, daemon, template.format(action="buy", size="0.1", position="long"))
    await execute(http, daemon, template.format(action="sell", size="0.1", position="short"))
    assert holdings(sim) == [("SELL", LOT // 10)]
    answer = await execute(http, daemon, template.format(action="buy", size="0", position="flat"))
    assert holdings(sim) == [] and "ignored at market_position flat: lots" in answer["notes"][-1]
    # Without it, TradingView's `sell 2` while long 1 hedges instead of reversing:
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.1"})
    await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.2", "market_position": "short"})
    assert holdings(sim) == [("BUY", LOT // 10), ("SELL", 2 * LOT // 10)]


@NETTED
async def test_netted_reduction_is_an_exit_the_kill_switch_lets_through(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon()
    await execute(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "0.3"})
    await daemon.stop()
    daemon = await start_daemon(risk={"kill_switch": True})
    answer = await execute(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.1"})
    assert "kill_switch applies to entries; this order only reduces the netted position" in answer["notes"]
    assert holdings(sim) == [("BUY", 2 * LOT // 10)]
    status, body = await send(http, daemon, {"action": "sell", "symbol": "EURUSD", "lots": "0.5"})
    assert (status, body["rule"]) == (422, "kill_switch")  # would open a short: an entry
    assert holdings(sim) == [("BUY", 2 * LOT // 10)]

"""Fault knobs, rate limits and the request log: each knob does exactly what it says."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from pipsync_lite import protos
from pipsync_lite.simulator import Simulator

from .conftest import Connect
from .wire import M, WireClient, kinds, new_order, trade

LOT = 10_000_000


@pytest.fixture(autouse=True)
def eurusd(sim: Simulator) -> None:
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))


async def test_drop_after_serves_n_requests_then_drops_the_link_once(
        sim: Simulator, connect: Connect) -> None:
    client = await connect(authorize=False)
    sim.faults.drop_after(2)
    await client.request(M.ProtoOAVersionReq())
    await client.request(M.ProtoOAVersionReq())
    client.send(M.ProtoOAVersionReq(), "third")
    await client.wait_closed()
    assert not [m for m in client.inbox if m.client_msg_id == "third"]
    await sim.wait_for_request("ProtoOAVersionReq", lambda r: r.client_msg_id == "third")
    again = await connect(authorize=False)  # one-shot: the next link is served
    assert (await again.request(M.ProtoOAVersionReq())).version


async def test_drop_on_before_never_executes_the_request(sim: Simulator,
                                                         client: WireClient) -> None:
    sim.faults.drop_on("ProtoOANewOrderReq", when="before")
    client.send(new_order(sim, "EURUSD", "BUY", LOT), "order")
    await client.wait_closed()
    assert not sim.positions() and not sim.deals()
    assert sim.requests_named("ProtoOANewOrderReq")[0].client_msg_id == "order"


async def test_drop_on_after_executes_but_the_answer_is_lost(sim: Simulator,
                                                             connect: Connect) -> None:
    client = await connect()
    sim.faults.drop_on("ProtoOANewOrderReq", when="after")
    client.send(new_order(sim, "EURUSD", "BUY", LOT, clientOrderId="lost-1"), "order")
    await client.wait_closed()
    assert not [m for m in client.inbox if m.client_msg_id == "order"]
    [pos] = sim.positions()
    fresh = await connect()  # what a reconnecting client finds on reconcile
    res = await fresh.request(M.ProtoOAReconcileReq(ctidTraderAccountId=sim.account_id))
    assert [p.positionId for p in res.position] == [pos.position_id]
    # times=1 by default: the next order goes through.
    got = await trade(fresh, new_order(sim, "EURUSD", "BUY", LOT), events=2)
    assert kinds(got) == ["ORDER_ACCEPTED", "ORDER_FILLED"]


async def test_delay_handles_the_request_late_as_if_slow_on_the_wire(
        sim: Simulator, client: WireClient) -> None:
    sim.faults.delay("ProtoOANewOrderReq", 0.4)
    sent = time.monotonic()
    client.send(new_order(sim, "EURUSD", "BUY", LOT), "in-flight")
    await sim.wait_for_request("ProtoOANewOrderReq")
    # Meanwhile the market moves and other requests are served at once.
    sim.set_price("EURUSD", bid=Decimal("1.10100"), ask=Decimal("1.10110"))
    res = await client.request(M.ProtoOAReconcileReq(ctidTraderAccountId=sim.account_id))
    assert not res.position and not sim.positions()
    filled = await client.wait(lambda m: m.client_msg_id == "in-flight"
                               and m.name == "ProtoOAExecutionEvent"
                               and m.message.executionType == 3)
    assert time.monotonic() - sent >= 0.4
    assert filled.message.order.executionPrice == 1.10110  # the price when it arrived
    answers = [m.message for m in client.inbox if m.client_msg_id == "in-flight"]
    assert kinds(answers) == ["ORDER_ACCEPTED", "ORDER_FILLED"]


async def test_delay_late_request_is_lost_with_its_link(sim: Simulator,
                                                        connect: Connect) -> None:
    client = await connect()
    sim.faults.delay("ProtoOANewOrderReq", 0.3)
    client.send(new_order(sim, "EURUSD", "BUY", LOT), "doomed")
    await sim.wait_for_request("ProtoOANewOrderReq")
    sim.drop_connections()
    await client.wait_closed()
    deadline = time.monotonic() + 0.5
    await sim.wait_for(lambda: time.monotonic() > deadline)
    assert not sim.positions()


async def test_delay_now_holds_the_answer_but_executes_at_once(sim: Simulator,
                                                               client: WireClient) -> None:
    sim.faults.delay("ProtoOANewOrderReq", 0.4, handle="now")
    sent = time.monotonic()
    client.send(new_order(sim, "EURUSD", "BUY", LOT), "slow")
    await sim.wait_for(lambda: sim.positions())
    # Other requests are not held up behind it.
    assert (await client.request(M.ProtoOAVersionReq())).version
    assert not [m for m in client.inbox if m.client_msg_id == "slow"]
    await client.wait(lambda m: m.client_msg_id == "slow"
                      and m.message.DESCRIPTOR.name == "ProtoOAExecutionEvent")
    assert time.monotonic() - sent >= 0.4
    answers = [m for m in client.inbox if m.client_msg_id == "slow"]
    await client.wait(lambda m: len([x for x in client.inbox if x.client_msg_id == "slow"]) >= 2)
    assert kinds([a.message for a in answers])[0] == "ORDER_ACCEPTED"


async def test_delay_of_every_request(sim: Simulator, client: WireClient) -> None:
    sim.faults.delay(None, 0.2)
    sent = time.monotonic()
    await client.request(M.ProtoOAVersionReq())
    assert time.monotonic() - sent >= 0.2
    sim.clear_faults()
    sent = time.monotonic()
    await client.request(M.ProtoOAVersionReq())
    assert time.monotonic() - sent < 0.2


async def test_swallow_never_answers_and_by_default_never_executes(
        sim: Simulator, client: WireClient) -> None:
    sim.faults.swallow("ProtoOANewOrderReq")
    client.send(new_order(sim, "EURUSD", "BUY", LOT), "gone")
    await sim.wait_for_request("ProtoOANewOrderReq")
    await client.request(M.ProtoOAVersionReq())  # the link is alive and in order
    assert not [m for m in client.inbox if m.client_msg_id == "gone"]
    assert not sim.positions()
    client.send(new_order(sim, "EURUSD", "BUY", LOT), "gone-again")  # until cleared
    await client.request(M.ProtoOAVersionReq())
    assert not [m for m in client.inbox if m.client_msg_id == "gone-again"]


async def test_swallow_with_handle_executes_silently(sim: Simulator,
                                                     client: WireClient) -> None:
    sim.faults.swallow("ProtoOANewOrderReq", times=1, handle=True)
    client.send(new_order(sim, "EURUSD", "BUY", LOT), "silent")
    await sim.wait_for(lambda: sim.positions())
    await client.request(M.ProtoOAVersionReq())
    assert not [m for m in client.inbox if m.client_msg_id == "silent"]


def test_fault_knobs_refuse_unknown_message_names() -> None:
    sim = Simulator(seed=1)
    with pytest.raises(ValueError):
        sim.faults.drop_on("NewOrderReq")
    with pytest.raises(ValueError):
        sim.faults.drop_on("ProtoOANewOrderReq", when="during")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sim.faults.reject_next_order("X", via="carrier-pigeon")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sim.faults.delay("ProtoOANewOrderReq", 1, handle="never")  # type: ignore[arg-type]


async def test_drop_connections(sim: Simulator, connect: Connect) -> None:
    clients = [await connect(authorize=False) for _ in range(2)]
    await sim.wait_for(lambda: len(sim.connection_ids) == 2)  # server side of the handshake
    sim.drop_connections()
    for client in clients:
        await client.wait_closed()
    await sim.wait_for(lambda: not sim.connection_ids)


async def test_rate_limit_fifty_per_second(sim: Simulator, connect: Connect) -> None:
    client = await connect(authorize=False)  # so that no earlier request shares the window
    start = len(client.inbox)
    for i in range(51):
        client.send(M.ProtoOAVersionReq(), f"r{i}")
    await client.wait(lambda m: m.client_msg_id == "r50", start=start)
    answers = [m for m in client.inbox[start:] if m.client_msg_id and m.client_msg_id[0] == "r"]
    errors = [m for m in answers if m.name == "ProtoOAErrorRes"]
    assert len(answers) == 51
    assert [e.message.errorCode for e in errors] == ["REQUEST_FREQUENCY_EXCEEDED"]
    assert errors[0].client_msg_id == "r50"
    # A second later the window has slid: requests pass again.
    last = sim.requests_named("ProtoOAVersionReq")[-1].monotonic
    await sim.wait_for(lambda: time.monotonic() > last + 1.0, timeout=3)
    assert (await client.request(M.ProtoOAVersionReq())).DESCRIPTOR.name == "ProtoOAVersionRes"


async def test_rate_limit_five_per_second_for_deal_history(sim: Simulator,
                                                           client: WireClient) -> None:
    req = M.ProtoOADealListReq(ctidTraderAccountId=sim.account_id, fromTimestamp=0,
                               toTimestamp=int(time.time() * 1000))
    start = len(client.inbox)
    for i in range(6):
        client.send(req, f"h{i}")
    await client.wait(lambda m: m.client_msg_id == "h5", start=start)
    names = [m.name for m in client.inbox[start:] if (m.client_msg_id or "").startswith("h")]
    assert names == ["ProtoOADealListRes"] * 5 + ["ProtoOAErrorRes"]
    # Historical requests do not use up the general budget.
    assert (await client.request(M.ProtoOAVersionReq())).DESCRIPTOR.name == "ProtoOAVersionRes"


async def test_rate_limits_are_per_connection(sim: Simulator, connect: Connect) -> None:
    first = await connect(authorize=False)
    second = await connect(authorize=False)
    for i in range(50):
        first.send(M.ProtoOAVersionReq(), f"f{i}")
    await first.wait(lambda m: m.client_msg_id == "f49")
    assert not first.named("ProtoOAErrorRes")
    assert (await second.request(M.ProtoOAVersionReq())).DESCRIPTOR.name == "ProtoOAVersionRes"


async def test_request_log_and_wait_for_request(sim: Simulator, client: WireClient) -> None:
    since = len(sim.requests)
    client.send(new_order(sim, "EURUSD", "SELL", LOT, label="x"), "seen")
    record = await sim.wait_for_request("ProtoOANewOrderReq", since=since,
                                        predicate=lambda r: r.message.label == "x")
    assert record.client_msg_id == "seen" and record.payload_type == 2106
    assert record.connection_id in sim.connection_ids
    with pytest.raises(TimeoutError):
        await sim.wait_for_request("ProtoOACancelOrderReq", timeout=0.1)
    heartbeat = protos.common.ProtoHeartbeatEvent()
    client.send(heartbeat)
    await sim.wait_for_request("ProtoHeartbeatEvent")


async def test_inspection_snapshots(sim: Simulator, client: WireClient) -> None:
    await trade(client, new_order(sim, "EURUSD", "BUY", LOT, relativeStopLoss=100,
                                  label="L", comment="C", clientOrderId="K"), events=3)
    [pos] = sim.positions()
    assert (pos.symbol, pos.side, pos.volume, pos.entry_price) == (
        "EURUSD", "BUY", LOT, Decimal("1.10010"))
    assert (pos.label, pos.comment, pos.commission) == ("L", "C", Decimal("-3.00"))
    [protection] = sim.orders()
    assert protection.order_type == "STOP_LOSS_TAKE_PROFIT"
    assert protection.position_id == pos.position_id == protection.position_id
    [deal] = sim.deals()
    assert (deal.symbol, deal.price, deal.commission) == ("EURUSD", Decimal("1.10010"),
                                                          Decimal("-3.00"))
    assert sim.balance == Decimal("10000.00")
    assert sim.quotes()["EURUSD"] == (Decimal("1.10000"), Decimal("1.10010"))


async def test_wait_for_times_out_with_the_condition_named(tmp_path: Path) -> None:
    sim = Simulator(seed=1, cert_dir=tmp_path)
    with pytest.raises(TimeoutError, match="never"):
        await sim.wait_for(lambda: False, timeout=0.05, what="never")

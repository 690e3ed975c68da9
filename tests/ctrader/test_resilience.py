"""Staying connected: reconnects, server events, token refresh, keep-alive and pacing."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs

from pipsync_lite.ctrader.client import CTraderClient
from pipsync_lite.ctrader.model import BrokerEvent, ConnectionChange, OrderRequest, Side, SymbolInfo
from pipsync_lite.errors import BrokerTimeout, BrokerUnavailable
from pipsync_lite.simulator import Simulator


def changes(events: list[BrokerEvent]) -> list[bool]:
    return [e.ready for e in events if isinstance(e, ConnectionChange)]


async def test_a_dropped_link_reconnects_reauthorizes_reconciles_and_resubscribes(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    events: list[BrokerEvent] = []
    client.subscribe(events.append)
    await client.subscribe_quotes([eurusd.symbol_id])
    result = await client.place_order(OrderRequest(symbol_id=eurusd.symbol_id, side=Side.BUY, volume=100_000))
    auths, reconciles = len(sim.requests_named("ProtoOAAccountAuthReq")), len(sim.requests_named("ProtoOAReconcileReq"))
    spot_subs = len(sim.requests_named("ProtoOASubscribeSpotsReq"))

    sim.drop_connections()
    await sim.wait_for(lambda: changes(events) == [False, True], timeout=10)
    assert client.ready
    assert len(sim.requests_named("ProtoOAAccountAuthReq")) == auths + 1
    assert len(sim.requests_named("ProtoOAReconcileReq")) == reconciles + 1
    resubscribed = sim.requests_named("ProtoOASubscribeSpotsReq")[spot_subs:]
    assert resubscribed and eurusd.symbol_id in resubscribed[0].message.symbolId
    assert [p.position_id for p in client.positions()] == [result.position_id]
    sim.set_price("EURUSD", bid=Decimal("1.10005"))
    await sim.wait_for(lambda: (q := client.quote(eurusd.symbol_id)) and q.bid == Decimal("1.10005"), timeout=5)


async def test_positions_changed_while_disconnected_are_picked_up(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    events: list[BrokerEvent] = []
    client.subscribe(events.append)
    # the server executes the order, but the link drops before the answer
    sim.faults.drop_on("ProtoOANewOrderReq", when="after")
    with pytest.raises(BrokerTimeout):
        await client.place_order(OrderRequest(symbol_id=eurusd.symbol_id, side=Side.BUY, volume=100_000))
    await sim.wait_for(lambda: changes(events)[-1:] == [True], timeout=10)
    assert [p.position_id for p in client.positions()] == [p.position_id for p in sim.positions()]


async def test_client_disconnect_event_leads_to_a_new_connection(sim: Simulator, client: CTraderClient) -> None:
    events: list[BrokerEvent] = []
    client.subscribe(events.append)
    first = sim.connection_ids
    sim.send_client_disconnect("maintenance")
    await sim.wait_for(lambda: changes(events) == [False, True], timeout=10)
    assert sim.connection_ids != first
    reasons = [e.reason for e in events if isinstance(e, ConnectionChange) and not e.ready]
    assert "maintenance" in reasons[0]


async def test_account_disconnect_event_reauthorizes_on_the_same_connection(
    sim: Simulator, client: CTraderClient
) -> None:
    events: list[BrokerEvent] = []
    client.subscribe(events.append)
    first = sim.connection_ids
    auths = len(sim.requests_named("ProtoOAAccountAuthReq"))
    sim.send_account_disconnect()
    await sim.wait_for(lambda: changes(events) == [False, True], timeout=10)
    assert sim.connection_ids == first
    assert len(sim.requests_named("ProtoOAAccountAuthReq")) == auths + 1


async def test_revoked_token_is_refreshed_and_the_account_reauthorized(sim: Simulator, make_client: Any) -> None:
    saved: list[str] = []

    async def on_tokens(access: str, refresh: str, expires_in: int) -> None:
        saved.append(access)

    client = await make_client(on_tokens=on_tokens)
    assert await client.wait_ready(10)
    events: list[BrokerEvent] = []
    client.subscribe(events.append)
    sim.invalidate_access_token()
    await sim.wait_for(lambda: changes(events) == [False, True], timeout=10)
    assert saved == [sim.credentials.access_token]
    last_auth = sim.requests_named("ProtoOAAccountAuthReq")[-1].message
    assert last_auth.accessToken == sim.credentials.access_token


async def test_refresh_on_demand_persists_then_uses_the_new_pair(sim: Simulator, make_client: Any) -> None:
    saved: list[tuple[str, str]] = []

    async def on_tokens(access: str, refresh: str, expires_in: int) -> None:
        saved.append((access, refresh))

    client = await make_client(on_tokens=on_tokens)
    assert await client.wait_ready(10)
    old = sim.credentials
    await client.refresh_tokens()
    assert client.ready or await client.wait_ready(10)
    assert saved == [(sim.credentials.access_token, sim.credentials.refresh_token)]
    assert sim.credentials.access_token != old.access_token
    assert sim.requests_named("ProtoOAAccountAuthReq")[-1].message.accessToken == sim.credentials.access_token
    # the session works on the new token
    assert (await client.reconcile()).account is not None


async def test_a_heartbeat_goes_out_when_the_link_is_idle(sim: Simulator, make_client: Any) -> None:
    client = await make_client(heartbeat_interval=0.2)
    assert await client.wait_ready(10)
    await sim.wait_for_request("ProtoHeartbeatEvent", timeout=5)


async def test_a_silent_server_is_declared_dead_and_replaced(sim: Simulator, make_client: Any) -> None:
    with capture_logs() as logs:
        client = await make_client(heartbeat_interval=0.1, silence_limit=0.6)
        assert await client.wait_ready(10)
        events: list[BrokerEvent] = []
        client.subscribe(events.append)
        sim.faults.swallow("ProtoOAVersionReq")  # the liveness probe goes unanswered
        await sim.wait_for(lambda: changes(events) == [False, True], timeout=10)
    assert [e for e in logs if e["event"] == "broker_link_silent"]
    assert sim.requests_named("ProtoOAVersionReq")


async def test_a_burst_stays_under_fifty_per_second_and_near_the_limit(sim: Simulator, client: CTraderClient) -> None:
    since = len(sim.requests)
    await asyncio.gather(*(client.reconcile() for _ in range(120)))
    arrivals = sorted(r.monotonic for r in sim.requests[since:] if r.name == "ProtoOAReconcileReq")
    assert len(arrivals) == 120
    for i, start in enumerate(arrivals):
        assert sum(1 for t in arrivals[i:] if t < start + 1.0) <= 50
    # 50 at once, 50 after ~1.05 s, 20 after ~2.1 s: not much slower than the limit allows
    assert arrivals[-1] - arrivals[0] < 2.6
    assert not [r for r in sim.requests[since:] if r.name == "ProtoOAErrorRes"]


async def test_stop_closes_cleanly_and_fails_nothing_silently(sim: Simulator, make_client: Any) -> None:
    client = await make_client()
    assert await client.wait_ready(10)
    connections = sim.connection_ids
    await client.stop()
    assert not client.ready
    await sim.wait_for(lambda: not (set(sim.connection_ids) & set(connections)), timeout=5)


async def test_a_token_that_expires_mid_session_is_refreshed_and_the_order_can_be_retried(
    sim: Simulator, make_client: Any
) -> None:
    saved: list[str] = []

    async def on_tokens(access: str, refresh: str, expires_in: int) -> None:
        saved.append(access)

    client = await make_client(on_tokens=on_tokens)
    assert await client.wait_ready(10)
    symbol = client.symbol("EURUSD")
    sim.expire_access_token()
    with pytest.raises(BrokerUnavailable, match="OA_AUTH_TOKEN_EXPIRED"):
        await client.place_order(OrderRequest(symbol_id=symbol.symbol_id, side=Side.BUY, volume=100_000))
    assert sim.positions() == []
    await sim.wait_for(lambda: saved and client.ready, timeout=10)
    result = await client.place_order(OrderRequest(symbol_id=symbol.symbol_id, side=Side.BUY, volume=100_000))
    assert result.status == "filled"


async def test_tokens_are_refreshed_ahead_of_their_expiry(sim: Simulator, make_client: Any) -> None:
    saved: list[int] = []

    async def on_tokens(access: str, refresh: str, expires_in: int) -> None:
        saved.append(expires_in)

    client = await make_client(on_tokens=on_tokens, access_token_expires_at=time.time() + 3600,
                               refresh_ahead=86_400.0)
    await sim.wait_for(lambda: saved and client.ready, timeout=10)
    assert client.token_expires_at is not None and client.token_expires_at > time.time() + 86_400
    assert sim.requests_named("ProtoOAAccountAuthReq")[-1].message.accessToken == sim.credentials.access_token


async def test_history_requests_are_paced_at_five_per_second_without_holding_orders_back(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    since = len(sim.requests)
    now_ms = int(time.time() * 1000)
    history = asyncio.gather(*(client.deal_list(now_ms - 60_000, now_ms) for _ in range(12)))
    await sim.wait_for(lambda: len(sim.requests_named("ProtoOADealListReq")) >= 5, timeout=5)
    started = time.monotonic()
    await client.place_order(OrderRequest(symbol_id=eurusd.symbol_id, side=Side.BUY, volume=100_000))
    order_arrival = sim.requests_named("ProtoOANewOrderReq")[0].monotonic
    await history
    arrivals = sorted(r.monotonic for r in sim.requests[since:] if r.name == "ProtoOADealListReq")
    assert len(arrivals) == 12
    for i, start in enumerate(arrivals):
        assert sum(1 for t in arrivals[i:] if t < start + 1.0) <= 5
    assert order_arrival - started < 0.2  # not queued behind the history backlog
    assert order_arrival < arrivals[-1]


async def test_requests_still_waiting_for_the_rate_limit_fail_as_never_sent(
    sim: Simulator, client: CTraderClient
) -> None:
    """Frames the pacer still holds when the link drops were never sent: BrokerUnavailable."""
    before = len(sim.requests_named("ProtoOAReconcileReq"))
    burst = asyncio.gather(*(client.reconcile() for _ in range(60)), return_exceptions=True)
    await sim.wait_for(lambda: len(sim.requests_named("ProtoOAReconcileReq")) - before >= 40, timeout=5)
    sim.drop_connections()
    results = await burst
    never_sent = [r for r in results if isinstance(r, BrokerUnavailable)]
    reached = len(sim.requests_named("ProtoOAReconcileReq")) - before
    assert never_sent and reached < 60
    assert len(never_sent) == 60 - reached
    assert all(isinstance(r, BrokerTimeout | BrokerUnavailable) or hasattr(r, "positions") for r in results)


async def test_a_paced_burst_of_orders_gets_its_timeout_after_leaving_the_pacer(
    sim: Simulator, make_client: Any
) -> None:
    """The last orders of a burst wait ~2 s for the pacer, twice their request_timeout: each
    one's timeout runs from when its frame left, so every one is answered.

    The client paces at 25/s here: the in-process simulator checks the API's 50/s when it has
    processed a request, and its own backlog under load must not be what the test measures.
    """
    client = await make_client(request_timeout=1.0, max_queue_wait=5.0, requests_per_second=25)
    assert await client.wait_ready(10)
    symbol = client.symbol("EURUSD")
    assert symbol is not None
    since = len(sim.requests)
    burst = 60  # 25 at once, 25 after 1.05 s, 10 after 2.1 s
    results = await asyncio.gather(
        *(client.place_order(OrderRequest(symbol_id=symbol.symbol_id, side=Side.BUY, volume=100_000))
          for _ in range(burst)),
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert all(r.status == "filled" for r in results)  # type: ignore[union-attr]
    arrivals = sorted(r.monotonic for r in sim.requests[since:] if r.name == "ProtoOANewOrderReq")
    assert len(arrivals) == burst
    assert arrivals[-1] - arrivals[0] > 1.5 * 1.0  # the pacer held the last ones past their timeout
    for i, start in enumerate(arrivals):
        assert sum(1 for t in arrivals[i:] if t < start + 1.0) <= 50
    assert not [r for r in sim.requests[since:] if r.name == "ProtoOAErrorRes"]


async def test_an_order_waiting_longer_than_max_queue_wait_for_the_pacer_is_refused_unsent(
    sim: Simulator, make_client: Any
) -> None:
    """Orders that would leave more than max_queue_wait after they were placed are not sent
    late: they fail as never sent (nothing executed), and the server never sees them."""
    client = await make_client(request_timeout=5.0, max_queue_wait=0.5, requests_per_second=10)
    assert await client.wait_ready(10)
    symbol = client.symbol("EURUSD")
    assert symbol is not None
    await sim.wait_for(lambda: time.monotonic() - sim.requests[-1].monotonic > 1.1, timeout=5)
    since = len(sim.requests_named("ProtoOANewOrderReq"))
    results = await asyncio.gather(
        *(client.place_order(OrderRequest(symbol_id=symbol.symbol_id, side=Side.BUY, volume=100_000))
          for _ in range(15)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, BrokerUnavailable)]
    filled = [r for r in results if not isinstance(r, BaseException) and r.status == "filled"]
    assert len(filled) == 10 and len(refused) == 5  # 10 in the first window; the rest would leave after 1 s
    assert all("was not sent" in str(r) for r in refused)
    # once the window has room again, a request queued behind them leaves: they did not
    await sim.wait_for(lambda: time.monotonic() - sim.requests[-1].monotonic > 1.1, timeout=5)
    await client.reconcile()
    assert len(sim.requests_named("ProtoOANewOrderReq")) - since == 10


async def test_an_order_given_up_while_it_waits_for_the_pacer_is_never_sent(
    sim: Simulator, client: CTraderClient, eurusd: SymbolInfo
) -> None:
    # the session's setup requests have left the pacer's window: 50 orders go at once, the 51st waits
    await sim.wait_for(lambda: time.monotonic() - sim.requests[-1].monotonic > 1.1, timeout=5)
    since = len(sim.requests_named("ProtoOANewOrderReq"))
    orders = [
        asyncio.create_task(client.place_order(OrderRequest(symbol_id=eurusd.symbol_id, side=Side.BUY,
                                                            volume=100_000)))
        for _ in range(51)
    ]
    await sim.wait_for(lambda: len(sim.requests_named("ProtoOANewOrderReq")) - since >= 50, timeout=5)
    for order in orders:
        order.cancel()  # the 50 sent stay sent; the 51st, still queued, must stay off the wire
    await asyncio.gather(*orders, return_exceptions=True)
    await client.reconcile()  # queued behind it: answered only after the window has room again
    assert len(sim.requests_named("ProtoOANewOrderReq")) - since == 50


async def test_a_symbol_traded_by_another_session_gets_its_quotes_followed(
    sim: Simulator, client: CTraderClient, make_client: Any
) -> None:
    other = await make_client()
    assert await other.wait_ready(10)
    gbpusd = client.symbol("GBPUSD")
    assert gbpusd is not None and client.quote(gbpusd.symbol_id) is None
    await other.place_order(OrderRequest(symbol_id=gbpusd.symbol_id, side=Side.BUY, volume=100_000))
    await sim.wait_for(lambda: client.quote(gbpusd.symbol_id), timeout=5, what="GBPUSD quotes")
    sim.set_price("GBPUSD", bid=Decimal("1.25000"), ask=Decimal("1.25020"))
    await sim.wait_for(lambda: (q := client.quote(gbpusd.symbol_id)) and q.bid == Decimal("1.25000"), timeout=5)


async def test_events_caused_by_another_session_update_state_but_answer_nothing(
    sim: Simulator, client: CTraderClient, make_client: Any, eurusd: SymbolInfo
) -> None:
    """The server pushes another connection's events with its (to us foreign) clientMsgId."""
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    other = await make_client()
    assert await other.wait_ready(10)
    seen: list[BrokerEvent] = []
    client.subscribe(seen.append)
    result = await other.place_order(OrderRequest(symbol_id=eurusd.symbol_id, side=Side.SELL, volume=200_000,
                                                  relative_stop_loss=100))
    await sim.wait_for(lambda: [p for p in client.positions() if p.stop_loss is not None], timeout=5)
    [position] = client.positions()
    assert position.position_id == result.position_id and position.volume == 200_000
    assert any(getattr(e, "order_id", None) == result.order_id for e in seen)
    # our own requests still get their own answers
    assert (await client.reconcile()).positions == (position,)

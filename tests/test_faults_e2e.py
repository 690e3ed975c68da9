"""Broker faults end to end (daemon ↔ simulator over TLS): no signal lost, none doubled.

Each test breaks one thing with the simulator's knobs, then checks the trade log against the
simulator: how many NewOrderReq it received per label, its positions and deals.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from pipsync_lite.app import Daemon
from pipsync_lite.simulator import Simulator, TlsFiles

from .conftest import StartDaemon, daemon_config, eventually
from .test_webhook_e2e import post

D = Decimal
BUY = {"action": "buy", "symbol": "EURUSD", "lots": 0.1, "sl_pips": 20}


async def final(daemon: Daemon, signal_id: int, statuses: tuple[str, ...] = ("executed", "failed"), timeout: float = 15) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        row = await daemon.store.signal(signal_id)
        return row if row and row["status"] in statuses else None

    return await eventually(done, timeout=timeout)


def orders_per_label(sim: Simulator) -> Counter[str]:
    return Counter(r.message.clientOrderId for r in sim.requests_named("ProtoOANewOrderReq"))


def label_of(daemon: Daemon, signal_id: int) -> str:
    return f"psl-{daemon.store.instance_id}-{signal_id}"


async def journal(daemon: Daemon, signal_id: int) -> list[str]:
    async with daemon.store.db.execute("SELECT state FROM broker_requests WHERE signal_id = ? ORDER BY id", (signal_id,)) as cursor:
        return [r[0] for r in await cursor.fetchall()]


async def trade_log_matches(daemon: Daemon, sim: Simulator) -> bool:
    assert daemon.ledger is not None
    await daemon.ledger.flush()
    deals = {d["deal_id"] for d in await daemon.store.deals()}
    positions = {p["position_id"] for p in await daemon.store.positions("open")}
    return deals == {d.deal_id for d in sim.deals()} and positions == {p.position_id for p in sim.positions()}


async def test_connection_dropped_before_the_order_is_handled(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """The link dies as the order arrives, before the server acts: outcome unknown; after the
    reconnect Reconcile and DealList show no trace, and the link it left on is gone, so it
    provably never executed: being young, it is sent again; one order at the broker."""
    daemon = await start_daemon(ctrader={"request_timeout_seconds": 5})
    sim.faults.drop_on("ProtoOANewOrderReq", "before")
    status, body, _ = await post(http, daemon, BUY)
    assert status == 202
    row = await final(daemon, body["signal_id"], ("executed",))
    assert row["status"] == "executed"
    assert orders_per_label(sim) == {label_of(daemon, body["signal_id"]): 2}  # the first never handled
    assert len(sim.positions()) == 1 and len(sim.deals()) == 1
    assert await journal(daemon, body["signal_id"]) == ["not_executed", "done"]


async def test_dropped_order_older_than_max_queue_age_is_not_sent_late(
    sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The same, but the reconnect comes after max_queue_age: rejected, never sent again."""
    from .test_outage_e2e import Clock, start

    clock = Clock()
    daemon = await start(sim, tmp_path, clock, ctrader={"request_timeout_seconds": 5})
    try:
        await eventually(lambda: daemon.intake is not None and daemon.intake.is_open)
        sim.faults.drop_on("ProtoOANewOrderReq", "before")
        status, body, _ = await post(http, daemon, BUY)
        assert status == 202
        await sim.wait_for_request("ProtoOANewOrderReq")
        clock.offset = timedelta(seconds=31)  # the reconnect comes "later"
        row = await final(daemon, body["signal_id"], ("rejected",))
        assert row["rule"] == "max_queue_age"
        assert orders_per_label(sim) == {label_of(daemon, body["signal_id"]): 1}
        assert sim.positions() == []
    finally:
        await daemon.stop()


async def test_connection_dropped_after_the_fill(start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    """The order fills but the answer and its events are lost with the link: after the
    reconnect, Reconcile finds the position by label and DealList the missed deal."""
    daemon = await start_daemon(ctrader={"request_timeout_seconds": 5})
    sim.faults.drop_on("ProtoOANewOrderReq", "after")
    status, body, _ = await post(http, daemon, BUY)
    assert status == 202
    row = await final(daemon, body["signal_id"])
    assert row["status"] == "executed" and "reconciled" in row["reason"]
    label = label_of(daemon, body["signal_id"])
    assert orders_per_label(sim) == {label: 1}
    [position] = sim.positions()
    [order] = [o for o in await daemon.store.orders_for(body["signal_id"]) if o["purpose"] == "entry"]
    assert (order["status"], order["position_id"]) == ("filled", position.position_id)
    assert await journal(daemon, body["signal_id"]) == ["executed"]
    await eventually(lambda: trade_log_matches(daemon, sim))
    [logged] = await daemon.store.positions("open")
    assert logged["signal_id"] == body["signal_id"] and logged["side"] == "buy"


async def test_answer_later_than_the_timeout_settles_the_signal(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """Executed at once, answered after the timeout: ``unknown`` first, then executed from
    the late events, without a reconnect and without a second order."""
    daemon = await start_daemon(ctrader={"request_timeout_seconds": 1})
    sim.faults.delay("ProtoOANewOrderReq", 2.0, times=1, handle="now")
    status, body, _ = await post(http, daemon, BUY)
    assert status == 202
    await final(daemon, body["signal_id"], ("unknown",))
    row = await final(daemon, body["signal_id"], ("executed",))
    assert "reconciled" in row["reason"]
    assert orders_per_label(sim) == {label_of(daemon, body["signal_id"]): 1}
    assert len(sim.positions()) == 1
    await eventually(lambda: trade_log_matches(daemon, sim))


async def test_order_reaching_the_broker_after_the_reconciliation(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """Slow on the wire: handled after the timeout AND after the reconciliation found nothing
    (failed ``not_executed``); its fill then arrives and the signal is executed after all."""
    daemon = await start_daemon(ctrader={"request_timeout_seconds": 0.5})
    sim.faults.delay("ProtoOANewOrderReq", 2.0, times=1, handle="late")
    status, body, _ = await post(http, daemon, BUY)
    assert status == 202
    row = await final(daemon, body["signal_id"], ("failed",))
    assert row["rule"] == "not_executed" and sim.positions() == []
    row = await final(daemon, body["signal_id"], ("executed",))
    assert orders_per_label(sim) == {label_of(daemon, body["signal_id"]): 1}
    [order] = [o for o in await daemon.store.orders_for(body["signal_id"]) if o["purpose"] == "entry"]
    assert order["status"] == "filled" and order["position_id"] == sim.positions()[0].position_id


async def test_unanswered_order_is_unknown_then_reconciled_not_failed(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """The server executes but never answers (no events either): reconciled from Reconcile."""
    daemon = await start_daemon(ctrader={"request_timeout_seconds": 0.5})
    sim.faults.swallow("ProtoOANewOrderReq", times=1, handle=True)
    status, body, _ = await post(http, daemon, BUY)
    assert status == 202
    await final(daemon, body["signal_id"], ("unknown",))
    row = await final(daemon, body["signal_id"], ("executed",))
    assert "reconciled" in row["reason"]
    assert orders_per_label(sim) == {label_of(daemon, body["signal_id"]): 1}


async def test_rejected_order_fails_with_the_code_and_is_not_retried(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.faults.reject_next_order("NOT_ENOUGH_MONEY", via="execution")
    status, body, _ = await post(http, daemon, BUY)
    assert status == 202
    row = await final(daemon, body["signal_id"])
    assert (row["status"], row["rule"]) == ("failed", "broker")
    assert await journal(daemon, body["signal_id"]) == ["refused"]
    assert orders_per_label(sim) == {label_of(daemon, body["signal_id"]): 1}


async def test_closed_market_rejects_and_nothing_is_queued(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.close_market("EURUSD")
    status, body, _ = await post(http, daemon, BUY)
    assert status == 202
    row = await final(daemon, body["signal_id"])
    assert row["status"] == "failed" and "MARKET_CLOSED" in row["reason"]
    assert sim.positions() == [] and len(sim.requests_named("ProtoOANewOrderReq")) == 1


async def test_token_expired_mid_session_refreshes_and_the_order_goes_once(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """OA_AUTH_TOKEN_EXPIRED on the order: not executed, so the signal waits (queue mode)
    while the session refreshes and re-authorizes, then goes out; one order at the broker."""
    daemon = await start_daemon()
    await eventually(lambda: daemon.intake is not None and daemon.intake.is_open)
    await daemon.broker.subscribe_quotes({1})  # the order is the first request to meet the dead token
    await eventually(lambda: daemon.broker.quote(1))
    sim.expire_access_token()
    status, body, _ = await post(http, daemon, BUY)
    assert status == 202
    row = await final(daemon, body["signal_id"], ("executed",))
    assert len(sim.positions()) == 1
    label = label_of(daemon, body["signal_id"])
    assert orders_per_label(sim) == {label: 2}  # the first was refused for the token
    assert len(sim.deals()) == 1
    assert await journal(daemon, body["signal_id"]) == ["unavailable", "done"]
    assert row["status"] == "executed"
    assert daemon.tokens is not None and daemon.tokens.current is not None
    assert daemon.tokens.current.source == "database" and daemon.tokens.expires_in_seconds() > 2_600_000


async def test_rate_limit_refusals_are_sent_again(tls_files: TlsFiles, tmp_path: Path, http: aiohttp.ClientSession, captured_logs: list[dict[str, Any]]) -> None:
    """The server refuses requests over its per-second limit (not executed): the journal
    sends each again after a pause; every signal ends in exactly one order."""
    sim = Simulator(seed=11, tls_files=tls_files, tick_interval=None, requests_per_second=12)
    await sim.start()
    daemon = Daemon(daemon_config(sim, tmp_path))
    try:
        await daemon.start()
        assert daemon.broker is not None and await daemon.broker.wait_ready(10)
        await eventually(lambda: daemon.intake is not None and daemon.intake.is_open)
        await daemon.broker.subscribe_quotes({sim.instrument("EURUSD").symbol_id})
        # let the server's one-second window empty after the setup requests
        await sim.wait_for(lambda: time.monotonic() - sim.requests[-1].monotonic > 1.05, timeout=5)
        answers = await asyncio.gather(*(post(http, daemon, {**BUY, "lots": 0.01}) for _ in range(20)))
        ids = [body["signal_id"] for status, body, _ in answers if status == 202]
        assert len(ids) == 20
        for signal_id in ids:
            assert (await final(daemon, signal_id))["status"] == "executed"
        assert len(sim.positions()) == 20
        assert any(e["event"] == "broker_rate_limited" for e in captured_logs)
        fills = Counter(r.message.clientOrderId for r in sim.requests_named("ProtoOANewOrderReq"))
        assert set(fills) == {label_of(daemon, i) for i in ids}
        assert sorted(p.label for p in sim.positions()) == sorted(fills)
    finally:
        await daemon.stop()
        await sim.stop()

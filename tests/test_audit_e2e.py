"""Stop-loss audit: a stop removed at the broker is put back; one that cannot be is reported."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp

from pipsync_lite.ctrader.client import ClientSettings, CTraderClient
from pipsync_lite.simulator import Simulator

from .conftest import StartDaemon, eventually
from .test_faults_e2e import final
from .test_webhook_e2e import post

D = Decimal
AUDITED = {"stop_audit_interval_seconds": "0.2"}


async def other_session(sim: Simulator) -> CTraderClient:
    """The user in cTrader (another session of the same account)."""
    creds = sim.credentials
    client = CTraderClient(ClientSettings(
        host="localhost", port=sim.port, ca_file=sim.ca_file, client_id=creds.client_id,
        client_secret=creds.client_secret, access_token=creds.access_token,
        refresh_token=creds.refresh_token, account_id=creds.account_id,
    ))
    await client.start()
    assert await client.wait_ready(10)
    return client


async def test_a_removed_stop_is_put_back(start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession, captured_logs: list[dict[str, Any]]) -> None:
    daemon = await start_daemon(ctrader=AUDITED)
    _, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.1, "sl_pips": 20, "tp_pips": 40})
    assert (await final(daemon, body["signal_id"]))["status"] == "executed"
    [position] = sim.positions()
    stop, target = position.stop_loss, position.take_profit
    assert stop == D("1.09810")
    user = await other_session(sim)
    try:
        await user.amend_position_sltp(position.position_id, None, target)
    finally:
        await user.stop()
    assert sim.positions()[0].stop_loss is None
    await sim.wait_for(lambda: sim.positions()[0].stop_loss == stop, timeout=10)
    assert sim.positions()[0].take_profit == target
    restored = await eventually(lambda: [e for e in captured_logs if e["event"] == "stop_loss_restored"])
    assert restored[0]["position_id"] == position.position_id


async def test_positions_opened_without_a_stop_are_left_alone(start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    daemon = await start_daemon(ctrader=AUDITED)
    _, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.1})
    assert (await final(daemon, body["signal_id"]))["status"] == "executed"
    assert daemon.audit is not None
    runs = daemon.audit.runs
    await eventually(lambda: daemon.audit.runs > runs + 15, timeout=10)  # past the 2 s settling time
    assert sim.positions()[0].stop_loss is None
    assert sim.requests_named("ProtoOAAmendPositionSLTPReq") == []


async def test_a_stop_that_cannot_be_put_back_raises_an_event(start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession, captured_logs: list[dict[str, Any]]) -> None:
    daemon = await start_daemon(ctrader=AUDITED)
    seen: list[dict[str, Any]] = []
    daemon.events.subscribe(lambda e: seen.append(e.data) if e.type == "order.failed" else None)
    _, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.1, "sl_pips": 20})
    assert (await final(daemon, body["signal_id"]))["status"] == "executed"
    [position] = sim.positions()
    user = await other_session(sim)
    try:
        await user.amend_position_sltp(position.position_id, None, None)
    finally:
        await user.stop()
    # the price falls through where the stop was: the broker refuses to put it back there
    sim.set_price("EURUSD", bid=D("1.09700"), ask=D("1.09710"))
    await eventually(lambda: seen, timeout=10)
    assert seen[0]["purpose"] == "stop_audit" and seen[0]["position_id"] == position.position_id
    assert seen[0]["signal_id"] == body["signal_id"] and "TRADING_BAD_STOPS" in seen[0]["error_text"]
    assert [e for e in captured_logs if e["event"] == "stop_loss_missing" and e["log_level"] == "error"]
    runs = daemon.audit.runs
    await eventually(lambda: daemon.audit.runs > runs + 3)
    assert len(seen) == 1  # raised once per position, not every round

"""Session events and broker outages through the daemon: reconnects, re-auth, heartbeats, the queue."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from pipsync_lite.app import Daemon
from pipsync_lite.ctrader.settings import ClientSettings
from pipsync_lite.engine import utcnow
from pipsync_lite.simulator import Simulator, TlsFiles

from .conftest import StartDaemon, daemon_config, eventually
from .test_faults_e2e import BUY, final, label_of, orders_per_label, trade_log_matches
from .test_webhook_e2e import post


def quick_reconnects(settings: ClientSettings) -> ClientSettings:
    return dataclasses.replace(settings, reconnect_base=0.05, reconnect_max=0.3)


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset


async def start(sim: Simulator, tmp_path: Path, clock: Clock | None = None, **sections: Any) -> Daemon:
    daemon = Daemon(daemon_config(sim, tmp_path, **sections), clock=clock or utcnow, broker_settings=quick_reconnects)
    await daemon.start()
    return daemon


def opened(daemon: Daemon) -> bool:
    return daemon.intake is not None and daemon.intake.is_open


# -- session events ---------------------------------------------------------------------------


async def test_client_disconnect_event_reconnects_and_reconciles(
    sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    daemon = await start(sim, tmp_path)
    seen: list[str] = []
    daemon.events.subscribe(lambda e: seen.append(e.type))
    try:
        await eventually(lambda: opened(daemon))
        assert daemon.recovery is not None
        passes = daemon.recovery.passes
        seen.clear()
        sim.send_client_disconnect("maintenance")
        await eventually(lambda: daemon.recovery.passes > passes and opened(daemon), timeout=10)
        assert seen.count("broker.disconnected") == 1 and seen.count("broker.connected") == 1
        status, body, _ = await post(http, daemon, BUY)
        assert status == 202 and (await final(daemon, body["signal_id"]))["status"] == "executed"
    finally:
        await daemon.stop()


async def test_account_disconnect_event_reauthorizes(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await eventually(lambda: opened(daemon))
    auths = len(sim.requests_named("ProtoOAAccountAuthReq"))
    sim.send_account_disconnect()
    await eventually(lambda: len(sim.requests_named("ProtoOAAccountAuthReq")) > auths and opened(daemon))
    status, body, _ = await post(http, daemon, BUY)
    assert status == 202 and (await final(daemon, body["signal_id"]))["status"] == "executed"


async def test_token_invalidated_event_refreshes_and_persists_the_new_pair(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    await eventually(lambda: opened(daemon))
    sim.invalidate_access_token()
    await eventually(lambda: sim.requests_named("ProtoOARefreshTokenReq") and opened(daemon), timeout=10)
    async with daemon.store.db.execute("SELECT expires_in FROM broker_tokens") as cursor:
        assert [r[0] for r in await cursor.fetchall()] == [2_628_000]
    status, body, _ = await post(http, daemon, BUY)
    assert status == 202 and (await final(daemon, body["signal_id"]))["status"] == "executed"


async def test_heartbeats_keep_an_idle_session_alive(tls_files: TlsFiles, tmp_path: Path) -> None:
    """The server drops a link idle for 1 s; the daemon's heartbeats every 0.2 s keep it."""
    sim = Simulator(seed=5, tls_files=tls_files, tick_interval=None, idle_timeout=1.0, heartbeat_interval=10.0)
    await sim.start()
    daemon = Daemon(
        daemon_config(sim, tmp_path),
        broker_settings=lambda s: dataclasses.replace(s, heartbeat_interval=0.2),
    )
    try:
        await daemon.start()
        assert daemon.broker is not None and await daemon.broker.wait_ready(10)
        first = list(sim.connection_ids)
        deadline_passed = await _idle(sim, seconds=2.5)
        assert deadline_passed and sim.connection_ids == first and daemon.broker.ready
    finally:
        await daemon.stop()
        await sim.stop()


async def _idle(sim: Simulator, seconds: float) -> bool:
    """Wait ``seconds`` of simulated idleness (no request at all): True when it passed."""
    try:
        await sim.wait_for(lambda: sim.connection_ids == [], timeout=seconds)
    except TimeoutError:
        return True
    return False


# -- the outage queue ---------------------------------------------------------------------------


async def test_alerts_during_an_outage_wait_and_go_out_in_order(
    sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    daemon = await start(sim, tmp_path)
    try:
        await eventually(lambda: opened(daemon))
        await sim.stop()
        await eventually(lambda: not opened(daemon))
        answers = [await post(http, daemon, {**BUY, "lots": lots}) for lots in (0.01, 0.02, 0.03)]
        assert [(s, b["status"]) for s, b, _ in answers] == [(202, "queued")] * 3
        assert "waits up to 30 s" in answers[0][1]["notes"][-1]
        again = await post(http, daemon, {**BUY, "id": "same"})
        dup = await post(http, daemon, {**BUY, "id": "same"})
        assert again[0] == 202 and dup[0] == 200 and dup[1]["signal_id"] == again[1]["signal_id"]
        await sim.start()
        ids = [b["signal_id"] for _, b, _ in answers]
        for signal_id in (*ids, again[1]["signal_id"]):
            assert (await final(daemon, signal_id))["status"] == "executed"
        sent = [r.message.clientOrderId for r in sim.requests_named("ProtoOANewOrderReq")]
        assert sent[:3] == [label_of(daemon, i) for i in ids]  # arrival order
        assert sorted(p.volume for p in sim.positions()) == [100_000, 200_000, 300_000, 1_000_000]
    finally:
        await daemon.stop()


async def test_a_queued_alert_older_than_max_queue_age_is_never_sent(
    sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    daemon = await start(sim, tmp_path, clock)
    seen: list[tuple[str, dict[str, Any]]] = []
    daemon.events.subscribe(lambda e: seen.append((e.type, e.data)))
    try:
        await eventually(lambda: opened(daemon))
        await sim.stop()
        await eventually(lambda: not opened(daemon))
        status, body, _ = await post(http, daemon, BUY)
        assert (status, body["status"]) == (202, "queued")
        clock.offset = timedelta(seconds=31)
        await sim.start()
        row = await final(daemon, body["signal_id"], ("rejected",))
        assert row["rule"] == "max_queue_age" and "not sent late" in row["reason"]
        assert ("signal.rejected", {"signal_id": body["signal_id"], "status": "rejected", "rule": "max_queue_age", "reason": row["reason"]}) in seen
        await eventually(lambda: opened(daemon))
        assert sim.requests_named("ProtoOANewOrderReq") == []
    finally:
        await daemon.stop()


async def test_reject_mode_answers_503_while_the_broker_is_down(
    sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    daemon = await start(sim, tmp_path, ctrader={"on_disconnected": "reject"})
    try:
        await eventually(lambda: opened(daemon))
        await sim.stop()
        await eventually(lambda: not opened(daemon))
        status, body, _ = await post(http, daemon, BUY)
        assert status == 503 and body["rule"] == "broker_unavailable"
        assert (await daemon.store.signal(body["signal_id"]))["status"] == "unavailable"
        await sim.start()
        await eventually(lambda: opened(daemon), timeout=10)
        assert sim.requests_named("ProtoOANewOrderReq") == []
    finally:
        await daemon.stop()


async def test_positions_closed_while_disconnected_are_found_in_the_deal_list(
    sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """An SL hit while the daemon is cut off: after the reconnect the deal is recorded with its
    reason, the ``trade.sl_hit`` event goes out and the log matches the broker."""
    daemon = await start(sim, tmp_path)
    seen: list[str] = []
    daemon.events.subscribe(lambda e: seen.append(e.type))
    try:
        await eventually(lambda: opened(daemon))
        _, body, _ = await post(http, daemon, {**BUY, "sl_pips": 5})
        assert (await final(daemon, body["signal_id"]))["status"] == "executed"
        await sim.stop()  # the daemon sees nothing from here on
        await eventually(lambda: not opened(daemon))
        sim.set_price("EURUSD", bid=Decimal("1.09900"), ask=Decimal("1.09910"))  # through the stop
        assert sim.positions() == []
        await sim.start()
        await eventually(lambda: opened(daemon), timeout=10)
        await eventually(lambda: trade_log_matches(daemon, sim))
        [position] = await daemon.store.positions()
        assert (position["status"], position["close_reason"]) == ("closed", "sl")
        assert "trade.sl_hit" in seen
        assert orders_per_label(sim) == {label_of(daemon, body["signal_id"]): 1}
    finally:
        await daemon.stop()


async def test_readyz_shows_the_intake_and_the_token_time_left(
    start_daemon: StartDaemon, http: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon()
    await eventually(lambda: opened(daemon))
    async with http.get(f"{daemon.base_url}/readyz") as response:
        body = await response.json()
    assert body["intake"] == "open" and body["token_expires_in_seconds"] is None  # YAML pair: unknown


async def test_a_recovery_pass_whose_request_goes_unanswered_is_tried_again(
    sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The intake must not stay shut because one DealList answer got lost on a live link."""
    sim.faults.swallow("ProtoOADealListReq", times=1)
    daemon = await start(sim, tmp_path, ctrader={"request_timeout_seconds": 0.5})
    try:
        await eventually(lambda: opened(daemon), timeout=10)
        assert len(sim.requests_named("ProtoOADealListReq")) == 2
        status, body, _ = await post(http, daemon, BUY)
        assert (status, body["status"]) == (202, "accepted")
    finally:
        await daemon.stop()

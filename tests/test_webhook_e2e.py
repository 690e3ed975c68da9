"""End to end: HTTP alert → guard → order at the simulator over TLS → trade log in SQLite."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from pipsync_lite.app import Daemon
from pipsync_lite.simulator import Simulator

from .conftest import WEBHOOK_TOKEN, StartDaemon, eventually

D = Decimal


async def post(
    http: aiohttp.ClientSession,
    daemon: Daemon,
    body: str | bytes | dict[str, Any],
    content_type: str = "application/json",
    token: str = WEBHOOK_TOKEN,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    data = json.dumps(body) if isinstance(body, dict) else body
    async with http.post(
        f"{daemon.base_url}/webhook/{token}", data=data, headers={"Content-Type": content_type}
    ) as response:
        text = await response.text()
        payload = json.loads(text) if text else {}
        return response.status, payload, response


async def settled(daemon: Daemon, signal_id: int) -> dict[str, Any]:
    """The signal's row once its execution finished (executed / failed / unknown)."""

    async def done() -> dict[str, Any] | None:
        row = await daemon.store.signal(signal_id)
        return row if row and row["status"] in {"executed", "failed", "unknown"} else None

    return await eventually(done, timeout=10)


# -- entries ---------------------------------------------------------------------------------


async def test_json_buy_with_lots_and_absolute_sl_tp(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.25, "sl": 1.095, "tp": 1.11})
    assert status == 202, body
    assert body["status"] == "accepted" and body["lots"] == "0.25"
    row = await settled(daemon, body["signal_id"])
    assert row["status"] == "executed"
    [position] = sim.positions()
    assert position.volume == 2_500_000  # 0.25 lot × lotSize 10,000,000
    assert (position.stop_loss, position.take_profit) == (D("1.09500"), D("1.11000"))
    [order] = [o for o in await daemon.store.orders_for(body["signal_id"]) if o["purpose"] == "entry"]
    assert order["status"] == "filled" and order["volume"] == 2_500_000
    assert order["client_order_id"].startswith("psl-") and order["client_order_id"].endswith(f"-{body['signal_id']}")
    positions = await eventually(lambda: daemon.store.positions("open"))
    assert positions[0]["signal_id"] == body["signal_id"]


async def test_fill_away_from_the_quote_is_amended_to_the_exact_levels(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """The daemon measures distances from its quote; when the fill moves, it amends to the exact levels."""
    await daemon.broker.subscribe_quotes({1})
    await eventually(lambda: daemon.broker.quote(1) and daemon.broker.quote(1).ask == D("1.10010"))
    sim.faults.delay("ProtoOANewOrderReq", 0.3)  # the market moves while the order travels
    status, body, _ = await post(http, daemon, {"action": "sell", "symbol": "EURUSD", "sl": "1.1050", "tp": "1.0950"})
    assert status == 202
    await sim.wait_for_request("ProtoOANewOrderReq")
    sim.set_price("EURUSD", bid=D("1.10050"), ask=D("1.10060"))
    await settled(daemon, body["signal_id"])
    [position] = sim.positions()
    assert position.entry_price == D("1.10050")
    assert (position.stop_loss, position.take_profit) == (D("1.10500"), D("1.09500"))
    purposes = [o["purpose"] for o in await daemon.store.orders_for(body["signal_id"])]
    assert purposes == ["entry", "amend"]


async def test_tradingview_text_plain_json_body(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post(http, daemon, '{"action":"BUY","symbol":"EURUSD","lots":"0.01"}', "text/plain; charset=utf-8")
    assert status == 202, body
    await settled(daemon, body["signal_id"])
    assert [p.volume for p in sim.positions()] == [100_000]


async def test_key_value_text_body(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    text = "command=PLACE; action=SELL; instrument=EURUSD; qty=0.02; sl_pips=20;"
    status, body, _ = await post(http, daemon, text, "text/plain")
    assert status == 202, body
    await settled(daemon, body["signal_id"])
    [position] = sim.positions()
    assert position.volume == 200_000 and position.side.lower() == "sell"
    assert position.stop_loss == position.entry_price + D("0.00200")


async def test_pending_limit_order_with_levels(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "price": 1.09, "sl_pips": 10, "tp": 1.095})
    assert status == 202
    row = await settled(daemon, body["signal_id"])
    assert row["status"] == "executed"
    [order] = [o for o in sim.orders() if not o.closing]
    assert order.order_type.lower() == "limit" and order.limit_price == D("1.09000")
    assert (order.stop_loss, order.take_profit) == (D("1.08900"), D("1.09500"))
    assert sim.positions() == []
    [stored] = await daemon.store.orders_for(body["signal_id"])
    assert stored["status"] == "accepted" and stored["broker_order_id"] == order.order_id


async def test_exchange_prefix_is_dropped_and_the_symbol_map_applies(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon(symbols={"map": {"GOLD": "XAUUSD"}})
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "OANDA:GOLD", "lots": 0.01})
    assert status == 202, body
    await settled(daemon, body["signal_id"])
    [position] = sim.positions()
    assert position.symbol == "XAUUSD"
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "FX:EURUSD"})
    assert status == 202


async def test_unknown_symbol_names_the_closest(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    status, body, response = await post(http, daemon, {"action": "buy", "symbol": "EURUSDX"})
    assert status == 422 and response.content_type == "application/problem+json"
    assert body["rule"] == "unknown_symbol" and "EURUSD" in body["detail"]
    row = await daemon.store.signal(body["signal_id"])
    assert row["status"] == "rejected" and row["rule"] == "unknown_symbol"


# -- close ---------------------------------------------------------------------------------


async def test_close_closes_every_position_of_the_symbol(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    for side in ("buy", "buy", "sell"):
        status, body, _ = await post(http, daemon, {"action": side, "symbol": "EURUSD", "lots": 0.01})
        await settled(daemon, body["signal_id"])
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "GBPUSD", "lots": 0.01})
    await settled(daemon, body["signal_id"])
    assert len(sim.positions()) == 4
    status, body, _ = await post(http, daemon, "action=close;symbol=EURUSD", "text/plain")
    assert status == 202, body
    row = await settled(daemon, body["signal_id"])
    assert row["status"] == "executed"
    assert [p.symbol for p in sim.positions()] == ["GBPUSD"]
    closes = await daemon.store.orders_for(body["signal_id"])
    assert len(closes) == 3 and all(o["status"] == "filled" for o in closes)
    closed = await eventually(lambda: _closed_count(daemon, 3))
    assert all(p["close_reason"] == "signal" for p in closed)


async def _closed_count(daemon: Daemon, n: int) -> list[dict[str, Any]] | None:
    rows = await daemon.store.positions("closed")
    return rows if len(rows) == n else None


async def test_close_with_nothing_open_is_422(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post(http, daemon, {"action": "close", "symbol": "EURUSD"})
    assert status == 422 and body["rule"] == "nothing_to_close"


async def test_sl_hit_is_recorded_with_its_reason_and_profit(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.1, "sl_pips": 10})
    await settled(daemon, body["signal_id"])
    balance_before = sim.balance
    sim.set_price("EURUSD", bid=D("1.09000"), ask=D("1.09010"))
    [closed] = await eventually(lambda: _closed_count(daemon, 1))
    assert closed["close_reason"] == "sl"
    deals = await daemon.store.deals()
    closing = [d for d in deals if d["gross_profit"] is not None]
    assert len(closing) == 1 and D(closing[0]["gross_profit"]) < 0
    assert sim.balance < balance_before


# -- the guard -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("risk", "alert", "rule", "detail"),
    [
        ({"max_lots": 1}, {"lots": 2}, "max_lots", "lots 2.00 > max_lots 1.00"),
        ({"allowed_symbols": ["GBPUSD"]}, {}, "allowed_symbols", "symbol EURUSD is not in allowed_symbols [GBPUSD]"),
        ({"require_sl": True}, {}, "require_sl", "require_sl: the alert has no stop loss (sl, sl_pips or sl_pct)"),
        ({"kill_switch": True}, {}, "kill_switch", "kill switch is on: entries are refused, exits still work"),
        ({"max_open_positions": 0}, {}, "max_open_positions", "positions 0 open >= max_open_positions 0"),
    ],
)
async def test_guard_rules_reject_with_rule_and_numbers(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession,
    risk: dict[str, Any], alert: dict[str, Any], rule: str, detail: str,
) -> None:
    daemon = await start_daemon(risk=risk)
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", **alert})
    assert (status, body["rule"], body["detail"]) == (422, rule, detail)
    row = await daemon.store.signal(body["signal_id"])
    assert (row["status"], row["rule"], row["reason"]) == ("rejected", rule, detail)
    assert sim.requests_named("ProtoOANewOrderReq") == []


async def test_default_lots_sizes_alerts_without_lots(start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    daemon = await start_daemon(risk={"default_lots": "0.03"})
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    assert body["lots"] == "0.03"
    await settled(daemon, body["signal_id"])
    assert [p.volume for p in sim.positions()] == [300_000]


async def test_max_open_positions_counts_positions_being_opened(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon(risk={"max_open_positions": 2})
    statuses = []
    for _ in range(4):
        status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
        statuses.append(status)
    assert statuses == [202, 202, 422, 422]
    await eventually(lambda: len(sim.positions()) == 2)


async def test_kill_switch_still_lets_close_through(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon()
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    await settled(daemon, body["signal_id"])
    await daemon.stop()
    daemon = await start_daemon(risk={"kill_switch": True})
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    assert status == 422
    status, body, _ = await post(http, daemon, {"action": "close", "symbol": "EURUSD"})
    assert status == 202
    await settled(daemon, body["signal_id"])
    assert sim.positions() == []


# -- bad input, idempotency, access ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", "body"),
        ('{"action": "buy", "symbol": "EURUSD", "lots": -1}', "lots"),
        ('{"action": "hold", "symbol": "EURUSD"}', "action"),
        ('{"action": "buy"}', "symbol"),
        ("", "body"),
        (b"\xff\xfe\x00garbage", "body"),
    ],
)
async def test_malformed_bodies_are_400_with_the_field_and_stored(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession, body: str | bytes, field: str
) -> None:
    status, answer, response = await post(http, daemon, body, "text/plain")
    assert status == 400 and response.content_type == "application/problem+json"
    assert answer["field"] == field and answer["status"] == 400 and answer["detail"]
    row = await daemon.store.signal(answer["signal_id"])
    assert row["status"] == "invalid" and row["field"] == field
    assert sim.requests_named("ProtoOANewOrderReq") == []


async def test_sl_on_the_wrong_side_is_400_and_nothing_is_sent(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "sl": 1.2})
    assert status == 400 and body["field"] == "sl"
    assert "below the current bid" in body["detail"]
    assert sim.requests_named("ProtoOANewOrderReq") == []


async def test_repeated_id_is_a_duplicate_answering_the_original(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    alert = {"action": "buy", "symbol": "EURUSD", "id": "strategy-1-2026-11-20T12:00:00Z"}
    status, first, _ = await post(http, daemon, alert)
    assert status == 202
    status, second, _ = await post(http, daemon, alert)
    assert (status, second) == (200, {"signal_id": first["signal_id"], "status": "duplicate"})
    await settled(daemon, first["signal_id"])
    assert len(sim.requests_named("ProtoOANewOrderReq")) == 1
    assert await daemon.store.count("signals", "status = 'duplicate'") == 1


async def test_wrong_token_is_a_bare_404_and_nothing_is_stored(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"}, token="wrong-token-wrong-token")
    assert status == 404 and set(body) == {"type", "title", "status"}
    assert await daemon.store.count("signals") == 0


async def test_body_over_64_kib_is_413_and_its_arrival_recorded(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    big = '{"action": "buy", "symbol": "EURUSD", "comment": "' + "x" * 70_000 + '"}'
    status, body, _ = await post(http, daemon, big)
    assert status == 413 and body["status"] == 413
    rows = await daemon.store.signals("invalid")
    assert len(rows) == 1 and "64 KiB" in rows[0]["reason"] and rows[0]["raw_body"] == ""


async def test_broker_rejection_is_recorded_with_its_error_code(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.faults.reject_next_order("NOT_ENOUGH_MONEY")
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    assert status == 202  # accepted: the broker's answer comes after the HTTP answer
    row = await settled(daemon, body["signal_id"])
    assert row["status"] == "failed" and "NOT_ENOUGH_MONEY" in row["reason"]
    [order] = await daemon.store.orders_for(body["signal_id"])
    assert (order["status"], order["error_code"]) == ("rejected", "NOT_ENOUGH_MONEY")


async def test_broker_not_ready_answers_503(start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    await sim.stop()
    daemon = await start_daemon(wait_ready=False, ctrader={"on_disconnected": "reject"})
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    assert status == 503 and body["rule"] == "broker_unavailable"
    async with http.get(f"{daemon.base_url}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["broker"] == "not_ready"
    async with http.get(f"{daemon.base_url}/healthz") as response:
        assert response.status == 200


async def test_readyz_reports_the_account_when_ready(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{daemon.base_url}/readyz") as response:
        assert response.status == 200
        body = await response.json()
    assert body["broker"] == "ready" and body["account_id"] == sim.account_id


async def test_events_follow_a_signal_from_receipt_to_sl_hit(daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    daemon.events.subscribe(lambda event: seen.append((event.type, event.data)))
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "sl_pips": 5})
    await settled(daemon, body["signal_id"])
    sim.set_price("EURUSD", bid=D("1.09000"), ask=D("1.09010"))
    await eventually(lambda: any(t == "trade.sl_hit" for t, _ in seen))
    await post(http, daemon, {"action": "buy", "symbol": "NOPE"})
    types = [t for t, _ in seen]
    assert types[:2] == ["signal.received", "trade.opened"]
    opened = dict(seen)["trade.opened"]
    assert opened["signal_id"] == body["signal_id"] and opened["volume"] == 100_000
    assert dict(seen)["trade.sl_hit"]["signal_id"] == body["signal_id"]
    assert types[-2:] == ["signal.received", "signal.rejected"]
    assert dict(seen)["signal.rejected"]["rule"] == "unknown_symbol"


async def test_api_paths_need_the_api_token(start_daemon: StartDaemon, http: aiohttp.ClientSession) -> None:
    daemon = await start_daemon(server={"api_token": "an-api-token-for-tests"})
    async with http.get(f"{daemon.base_url}/v1/anything") as response:
        assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    headers = {"Authorization": "Bearer an-api-token-for-tests"}
    async with http.get(f"{daemon.base_url}/v1/anything", headers=headers) as response:
        assert response.status == 404  # authorized; no such route
    async with http.post(f"{daemon.base_url}/webhook/{WEBHOOK_TOKEN}", data="{}") as response:
        assert response.status == 400  # the webhook does not need the API token


async def test_api_is_disabled_without_a_token(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{daemon.base_url}/v1/signals", headers={"Authorization": "Bearer x"}) as response:
        assert response.status == 404 and (await response.json())["type"] == "/problems/api_disabled"

"""The read API: signals with their verdicts and broker answers, trades, live positions,
cursor pagination, filters, RFC 7807 errors, and the OpenAPI document built from the models."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from pipsync_lite.api_models import SignalDetail, SignalQuery
from pipsync_lite.app import Daemon
from pipsync_lite.simulator import Simulator

from .conftest import WEBHOOK_TOKEN, eventually
from .fakes import bearer
from .test_webhook_e2e import post, settled


async def get(http: aiohttp.ClientSession, daemon: Daemon, path: str, **params: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.get(daemon.base_url + path, params=params, headers=bearer()) as response:
        return response.status, json.loads(await response.text()), response


async def test_signals_show_parsed_fields_verdict_orders_and_broker_answers(
    operator_daemon: Any, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    daemon = await operator_daemon()
    _, ok, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.2, "sl_pips": 15, "comment": WEBHOOK_TOKEN})
    await settled(daemon, ok["signal_id"])
    sim.faults.reject_next_order("NOT_ENOUGH_MONEY")
    _, refused, _ = await post(http, daemon, {"action": "sell", "symbol": "EURUSD"})
    await settled(daemon, refused["signal_id"])
    _, unknown, _ = await post(http, daemon, {"action": "buy", "symbol": "NOSUCH"})
    _, invalid, _ = await post(http, daemon, "action=fly", "text/plain")

    status, page, response = await get(http, daemon, "/v1/signals")
    assert status == 200 and response.content_type == "application/json"
    assert [s["id"] for s in page["items"]] == [invalid["signal_id"], unknown["signal_id"], refused["signal_id"], ok["signal_id"]]
    assert page["next_cursor"] is None
    by_id = {s["id"]: s for s in page["items"]}
    executed = by_id[ok["signal_id"]]
    assert (executed["status"], executed["verdict"], executed["lots"], executed["symbol"]) == ("executed", "accepted", "0.2", "EURUSD")
    assert executed["parsed"]["sl_pips"] == "15" and executed["parsed"]["comment"] == "***"
    [entry] = executed["orders"]
    assert entry["purpose"] == "entry" and entry["status"] == "filled" and entry["execution_price"] == "1.10010"
    assert entry["broker_order_id"] and entry["position_id"] and entry["volume"] == 2_000_000
    failed = by_id[refused["signal_id"]]
    assert (failed["status"], failed["verdict"]) == ("failed", "accepted")
    assert failed["orders"][0]["status"] == "rejected" and failed["orders"][0]["error_code"] == "NOT_ENOUGH_MONEY"
    assert (by_id[unknown["signal_id"]]["verdict"], by_id[unknown["signal_id"]]["rule"]) == ("rejected", "unknown_symbol")
    assert (by_id[invalid["signal_id"]]["verdict"], by_id[invalid["signal_id"]]["field"]) == ("invalid", "action")

    status, detail, _ = await get(http, daemon, f"/v1/signals/{ok['signal_id']}")
    assert status == 200
    assert WEBHOOK_TOKEN not in detail["raw_body"] and '"comment": "***"' in detail["raw_body"]
    assert detail["orders"] == executed["orders"] and detail["updated_at"]
    SignalDetail.model_validate(detail)  # the answer is the model the document shows


async def test_cursor_pagination_walks_every_signal_once_even_while_new_ones_arrive(
    operator_daemon: Any, http: aiohttp.ClientSession
) -> None:
    daemon = await operator_daemon()
    ids = [(await post(http, daemon, f"action=bad{i}", "text/plain"))[1]["signal_id"] for i in range(7)]
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        status, page, _ = await get(http, daemon, "/v1/signals", **params)
        assert status == 200 and len(page["items"]) <= 3
        seen += [s["id"] for s in page["items"]]
        pages += 1
        if pages == 1:  # a newer signal arrives mid-walk: it must not shift the pages
            await post(http, daemon, "action=late", "text/plain")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True) and pages == 3


async def test_filters_by_symbol_status_and_time(operator_daemon: Any, http: aiohttp.ClientSession) -> None:
    daemon = await operator_daemon()
    _, first, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    await settled(daemon, first["signal_id"])
    _, second, _ = await post(http, daemon, {"action": "buy", "symbol": "USDJPY"})
    await settled(daemon, second["signal_id"])
    _, third, _ = await post(http, daemon, {"action": "buy", "symbol": "NOSUCH"})

    _, page, _ = await get(http, daemon, "/v1/signals", symbol="eurusd")
    assert [s["id"] for s in page["items"]] == [first["signal_id"]]
    _, page, _ = await get(http, daemon, "/v1/signals", status="rejected")
    assert [s["id"] for s in page["items"]] == [third["signal_id"]]
    _, detail, _ = await get(http, daemon, f"/v1/signals/{second['signal_id']}")
    since = detail["received_at"].replace("+00:00", "Z")
    _, page, _ = await get(http, daemon, "/v1/signals", since=since)
    assert [s["id"] for s in page["items"]] == [third["signal_id"], second["signal_id"]]
    _, page, _ = await get(http, daemon, "/v1/signals", since="2999-01-01T00:00:00+02:00")
    assert page == {"items": [], "next_cursor": None}


async def test_trades_and_live_positions(operator_daemon: Any, sim: Simulator, http: aiohttp.ClientSession) -> None:
    daemon = await operator_daemon()
    _, euro, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.1})
    await settled(daemon, euro["signal_id"])
    _, yen, _ = await post(http, daemon, {"action": "sell", "symbol": "USDJPY", "lots": 0.3})
    await settled(daemon, yen["signal_id"])
    sim.set_price("EURUSD", bid="1.10110", ask="1.10120")
    _, close, _ = await post(http, daemon, {"action": "close", "symbol": "EURUSD"})
    await settled(daemon, close["signal_id"])

    async def closed_trade() -> Any:
        _, page, _ = await get(http, daemon, "/v1/trades", status="closed")
        return page if page["items"] else None

    page = await eventually(closed_trade)
    [trade] = page["items"]
    assert (trade["symbol"], trade["side"], trade["signal_id"], trade["close_reason"]) == ("EURUSD", "buy", euro["signal_id"], "signal")
    assert trade["gross_profit"] == "10.00" and trade["lots"] == "0.1"  # (1.10110 − 1.10010) × 10,000 units
    assert trade["net_profit"] == str(sum(map(_dec, (trade["gross_profit"], trade["commission"], trade["swap"]))))
    _, page, _ = await get(http, daemon, "/v1/trades", status="open")
    assert [t["symbol"] for t in page["items"]] == ["USDJPY"]

    status, page, _ = await get(http, daemon, "/v1/positions")
    assert status == 200
    [position] = page["items"]
    assert (position["symbol"], position["side"], position["lots"], position["signal_id"]) == ("USDJPY", "sell", "0.3", yen["signal_id"])
    assert position["unrealized_net"] is not None and position["opened_at"]
    _, page, _ = await get(http, daemon, "/v1/positions", symbol="EURUSD")
    assert page["items"] == []


async def test_positions_need_the_broker(operator_daemon: Any, http: aiohttp.ClientSession) -> None:
    daemon = await operator_daemon(wait_ready=False, ctrader={"port": 9})
    status, body, response = await get(http, daemon, "/v1/positions")
    assert status == 503 and response.content_type == "application/problem+json" and body["rule"] == "broker_unavailable"


async def test_errors_are_problem_details(operator_daemon: Any, http: aiohttp.ClientSession) -> None:
    daemon = await operator_daemon()
    cases = [
        ({"limit": "0"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "5.0"}, "limit"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),  # before the first UTC instant
        ({"cursor": "x1"}, "cursor"),
        ({"since": "2024-05-01T00:00:00"}, "since"),  # no zone: ambiguous
        ({"sinse": "2024-05-01T00:00:00Z"}, "sinse"),
    ]
    for params, field in cases:
        status, body, response = await get(http, daemon, "/v1/signals", **params)
        assert status == 400 and response.content_type == "application/problem+json", params
        assert body["field"] == field and body["status"] == 400 and body["title"]
    async with http.get(f"{daemon.base_url}/v1/signals?limit=1&limit=2", headers=bearer()) as response:
        assert response.status == 400 and (await response.json())["field"] == "limit"
    status, body, _ = await get(http, daemon, "/v1/signals/abc")
    assert status == 400 and body["field"] == "signal_id"
    status, body, _ = await get(http, daemon, f"/v1/signals/{2**63}")
    assert status == 400
    status, body, _ = await get(http, daemon, "/v1/signals/424242")
    assert status == 404 and body["type"] == "/problems/not_found"
    async with http.get(f"{daemon.base_url}/v1/trades") as response:
        assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    async with http.delete(f"{daemon.base_url}/v1/trades", headers=bearer()) as response:
        assert response.status == 405 and "GET" in response.headers["Allow"]
        assert response.content_type == "application/problem+json"


async def test_openapi_document_comes_from_the_handlers_models(operator_daemon: Any, http: aiohttp.ClientSession) -> None:
    daemon = await operator_daemon()
    status, spec, _ = await get(http, daemon, "/api/v1/openapi.json")
    assert status == 200 and spec["openapi"] == "3.1.0"
    assert set(spec["paths"]) == {"/v1/signals", "/v1/signals/{signal_id}", "/v1/trades", "/v1/positions"}
    listing = spec["paths"]["/v1/signals"]["get"]
    assert {p["name"] for p in listing["parameters"]} == set(SignalQuery.model_fields)
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SignalPage"}
    assert listing["responses"]["401"]["content"]["application/problem+json"]
    detail_schema = spec["components"]["schemas"]["SignalDetail"]
    assert set(detail_schema["properties"]) == set(SignalDetail.model_fields)
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer", "description": "server.api_token"}
    async with http.get(f"{daemon.base_url}/api/v1/openapi.json") as response:
        assert response.status == 401


def _dec(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text)

"""The read API under ``/v1/`` (and the CLI's way in for ``send``), and its OpenAPI document.

``GET /v1/signals``, ``GET /v1/signals/{id}``, ``GET /v1/trades`` read the trade log;
``GET /v1/positions`` asks the live broker session; ``POST /v1/signals`` takes an alert exactly
as the webhook does (``pipsync-lite send``). All behind ``server.api_token`` (web.py's
middleware); every error is RFC 7807. ``GET /api/v1/openapi.json`` serves the document built
from :data:`OPERATIONS`, the same models the handlers validate and answer with.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from pipsync_lite import history
from pipsync_lite.api_models import (
    MAX_ID,
    AlertAnswer,
    Order,
    Position,
    PositionPage,
    PositionQuery,
    Signal,
    SignalDetail,
    SignalPage,
    SignalPath,
    SignalQuery,
    Trade,
    TradePage,
    TradeQuery,
)
from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.model import Position as BrokerPosition
from pipsync_lite.ctrader.model import SymbolInfo, UnrealizedPnL
from pipsync_lite.errors import BrokerError
from pipsync_lite.ledger import signal_id_from_label
from pipsync_lite.openapi import Operation, build_spec
from pipsync_lite.store import Store
from pipsync_lite.web import STATE, answer, problem

Q = TypeVar("Q", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LiveBroker(Protocol):
    """What the API reads from the broker session (``CTraderClient``)."""

    @property
    def ready(self) -> bool: ...

    def positions(self) -> list[BrokerPosition]: ...

    def symbol_by_id(self, symbol_id: int) -> SymbolInfo | None: ...

    def symbol(self, name: str) -> SymbolInfo | None: ...

    async def unrealized_pnl(self) -> list[UnrealizedPnL]: ...


@dataclass(frozen=True, slots=True)
class ApiDeps:
    store: Store
    broker: LiveBroker


DEPS = web.AppKey("api_deps", ApiDeps)


class _Invalid(Exception):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field, self.detail = field, detail


def _parse(model: type[Q], values: dict[str, Any]) -> Q:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "query"
        reason = "unknown parameter" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise _Invalid(field, f"{field}: {reason}") from None


def _query(request: web.Request, model: type[Q]) -> Q:
    values: dict[str, Any] = {}
    for key in request.query:
        given = request.query.getall(key)
        if len(given) > 1:
            raise _Invalid(key, f"{key}: given {len(given)} times")
        values[key] = given[0]
    return _parse(model, values)


def _ok(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


def _guarded(handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Invalid as err:
            return problem(400, "Invalid parameter", err.detail, kind="invalid_parameter", field=err.field)

    return run


def _before(cursor: str | None) -> int | None:
    return None if cursor is None else min(int(cursor), MAX_ID)


# -- signals --------------------------------------------------------------------------------


def _signal_fields(row: dict[str, Any], orders: list[dict[str, Any]]) -> dict[str, Any]:
    parsed = json.loads(row["parsed"]) if row.get("parsed") else None
    return {
        **{k: row.get(k) for k in Signal.model_fields if k not in ("parsed", "orders", "verdict")},
        "verdict": history.verdict(row["status"]),
        "parsed": parsed if isinstance(parsed, dict) else None,
        "orders": [Order.model_validate(o) for o in orders],
    }


async def list_signals(request: web.Request) -> web.Response:
    q = _query(request, SignalQuery)
    store = request.app[DEPS].store
    rows = await history.signals(
        store, history.Filters(q.limit, _before(q.cursor), q.symbol, q.status, q.since)
    )
    page = rows[: q.limit]
    orders = await history.orders_of(store, [r["id"] for r in page])
    items = [Signal.model_validate(_signal_fields(r, orders[r["id"]])) for r in page]
    more = len(rows) > q.limit
    return _ok(SignalPage(items=items, next_cursor=str(page[-1]["id"]) if more else None))


async def get_signal(request: web.Request) -> web.Response:
    path = _parse(SignalPath, {"signal_id": request.match_info["signal_id"]})
    store = request.app[DEPS].store
    row = await history.signal(store, path.signal_id)
    if row is None:
        return problem(404, "Not Found", f"no signal {path.signal_id}", kind="not_found")
    orders = await history.orders_of(store, [path.signal_id])
    detail = {**_signal_fields(row, orders[path.signal_id]), "raw_body": row["raw_body"], "updated_at": row["updated_at"]}
    return _ok(SignalDetail.model_validate(detail))


async def submit_alert(request: web.Request) -> web.Response:
    """The webhook's processing for an alert from the CLI (``pipsync-lite send``)."""
    state = request.app[STATE]
    if not state.accepting:
        return problem(503, "Service Unavailable", "shutting down; retry later", kind="shutting_down")
    body = await request.read()
    return answer(await state.engine.receive(body, source_ip=request.remote))


# -- trades and positions -----------------------------------------------------------------------


async def list_trades(request: web.Request) -> web.Response:
    q = _query(request, TradeQuery)
    deps = request.app[DEPS]
    rows = await history.trades(deps.store, history.Filters(q.limit, _before(q.cursor), q.symbol, q.status, q.since))
    page = rows[: q.limit]
    items = []
    for row in page:
        values = {k: row.get(k) for k in Trade.model_fields if k in row}
        for key in ("gross_profit", "commission", "swap", "net_profit"):
            values[key] = str(row.get(key, 0))
        symbol = deps.broker.symbol(row["symbol"]) if row.get("symbol") else None
        if symbol is not None and row.get("volume") is not None:
            values["lots"] = str(units.volume_to_lots(int(row["volume"]), symbol))
        items.append(Trade.model_validate(values))
    more = len(rows) > q.limit
    return _ok(TradePage(items=items, next_cursor=str(page[-1]["position_id"]) if more else None))


async def list_positions(request: web.Request) -> web.Response:
    q = _query(request, PositionQuery)
    broker = request.app[DEPS].broker
    if not broker.ready:
        return problem(503, "Broker unavailable", "not connected to cTrader", kind="broker_unavailable", rule="broker_unavailable")
    positions = await live_positions(broker)
    if q.symbol is not None:
        positions = [p for p in positions if p.symbol.lower() == q.symbol.lower()]
    if q.since is not None:
        since = q.since.astimezone(UTC).isoformat(timespec="milliseconds")
        positions = [p for p in positions if (p.opened_at or "") >= since]
    before = _before(q.cursor)
    if before is not None:
        positions = [p for p in positions if p.position_id < before]
    page = positions[: q.limit]
    more = len(positions) > q.limit
    return _ok(PositionPage(items=page, next_cursor=str(page[-1].position_id) if more else None))


async def live_positions(broker: LiveBroker, pnl_timeout: float = 2.0) -> list[Position]:
    """The broker's open positions, newest first, with floating P/L when it answers in time."""
    pnl: dict[int, UnrealizedPnL] = {}
    raw = broker.positions()
    if raw:
        try:
            pnl = {p.position_id: p for p in await asyncio.wait_for(broker.unrealized_pnl(), pnl_timeout)}
        except (BrokerError, TimeoutError):
            pnl = {}
    out = []
    for p in sorted(raw, key=lambda p: p.position_id, reverse=True):
        symbol = broker.symbol_by_id(p.symbol_id)
        opened = (
            datetime.fromtimestamp(p.open_timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")
            if p.open_timestamp_ms
            else None
        )
        out.append(
            Position(
                position_id=p.position_id,
                symbol=symbol.name if symbol else str(p.symbol_id),
                side=p.side.value,
                volume=p.volume,
                lots=str(units.volume_to_lots(p.volume, symbol)) if symbol else None,
                entry_price=str(p.entry_price),
                stop_loss=None if p.stop_loss is None else str(p.stop_loss),
                take_profit=None if p.take_profit is None else str(p.take_profit),
                trailing_stop_loss=p.trailing_stop_loss,
                opened_at=opened,
                signal_id=signal_id_from_label(p.label),
                unrealized_net=str(pnl[p.position_id].net) if p.position_id in pnl else None,
            )
        )
    return out


# -- the document ---------------------------------------------------------------------------

_LIST = "A page, newest first."
OPERATIONS: tuple[tuple[Operation, Handler], ...] = (
    (
        Operation("get", "/v1/signals", "listSignals", "Signals received, with verdict, orders and broker answers",
                  {200: (SignalPage, _LIST)}, (400,), query=SignalQuery, tags=("signals",)),
        list_signals,
    ),
    (
        Operation("post", "/v1/signals", "submitAlert", "Submit an alert as if it came to the webhook",
                  {202: (AlertAnswer, "Taken: stored and sent to the broker (or waiting for approval)."),
                   200: (AlertAnswer, "A duplicate of an earlier alert: nothing done.")},
                  (400, 413, 422, 429, 503), alert_body=True, tags=("signals",),
                  description="Used by `pipsync-lite send`. Answers exactly as `POST /webhook/<token>`."),
        submit_alert,
    ),
    (
        Operation("get", "/v1/signals/{signal_id}", "getSignal", "One signal: redacted raw body, parsed fields, verdict, orders",
                  {200: (SignalDetail, "The signal.")}, (400, 404), path_params=SignalPath, tags=("signals",)),
        get_signal,
    ),
    (
        Operation("get", "/v1/trades", "listTrades", "Trades (positions of the trade log) with realized P/L",
                  {200: (TradePage, _LIST)}, (400,), query=TradeQuery, tags=("trades",)),
        list_trades,
    ),
    (
        Operation("get", "/v1/positions", "listPositions", "Open positions, live from the broker",
                  {200: (PositionPage, _LIST)}, (400, 503), query=PositionQuery, tags=("trades",)),
        list_positions,
    ),
)

SPEC_PATH = "/api/v1/openapi.json"


def spec() -> dict[str, Any]:
    return build_spec([op for op, _ in OPERATIONS])


def install(app: web.Application, deps: ApiDeps) -> None:
    """Add the API's routes to the daemon's application (before it starts)."""
    app[DEPS] = deps
    document = spec()
    for op, handler in OPERATIONS:
        app.router.add_route(op.method.upper(), op.path, _guarded(handler))

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(SPEC_PATH, openapi)
